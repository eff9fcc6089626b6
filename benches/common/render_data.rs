//! The whisper tree the render benches read, shared by `render` and `render_sum`: metrics of
//! one day at 10 s, indexed as the server indexes its data directory, and the render settings.

use std::path::Path;
use std::sync::Arc;

use carbide::http::render::RenderEnv;
use carbide::index::Index;
use carbide::query::eval::Limits;
use carbide::query::store::{Names, Store};
use carbide::whisper::{self, CreateOptions, WriteOptions};

/// The benches' "now": every file holds the day before it.
pub const NOW: i64 = 1_700_000_000;

struct IndexNames(Index);

impl Names for IndexNames {
    fn expand(&self, pattern: &str) -> Vec<String> {
        self.0.expand(pattern)
    }
}

/// One sparse file of a day at 10 s, every slot written.
fn metric(root: &Path, name: &str) {
    let path = root.join(format!("{}.wsp", name.replace('.', "/")));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let opts = CreateOptions {
        sparse: true,
        ..CreateOptions::default()
    };
    whisper::create(&path, &[(10, 8640)], &opts).expect("create");
    let points: Vec<(i64, f64)> = (0..8640).map(|i| (NOW - i * 10, (i % 97) as f64)).collect();
    whisper::update_many(&path, &points, Some(NOW), WriteOptions::default()).expect("fill");
}

/// A temporary whisper tree holding `names`, and a store reading it.
pub fn tree(names: impl IntoIterator<Item = String>) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in names {
        metric(dir.path(), &name);
    }
    let index = Index::load_dir(dir.path()).expect("index");
    let store = Store::new(dir.path(), Arc::new(IndexNames(index)));
    (dir, store)
}

/// The 1,000 metrics that `agg.*.cpu` matches.
pub fn agg_names() -> impl Iterator<Item = String> {
    (0..1000).map(|h| format!("agg.host{h:04}.cpu"))
}

/// Render settings as the server's defaults, at [`NOW`].
pub fn env(store: &Store) -> RenderEnv<'_> {
    RenderEnv {
        source: store,
        default_zone: chrono_tz::UTC,
        limits: Limits::default(),
        max_targets: 100,
        now: NOW,
    }
}
