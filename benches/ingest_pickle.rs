//! Decoding one carbon-relay-sized pickle frame: `cargo bench --bench ingest_pickle`.
//!
//! carbon-relay and most clients send `pickle.dumps(batch, protocol=2)` of a list of
//! `(name, (timestamp, value))` tuples, close to the 1 MiB frame limit under load. The
//! fixture is written here opcode by opcode the way CPython's pickler lays out such a batch
//! (BINUNICODE names, BININT timestamps, BINFLOAT values, TUPLE2, memo puts, APPENDS in runs
//! of 1000), so the bench needs no Python. Throughput is reported both in bytes and points.

use carbide::ingest::pickle::{decode_frame, Limits};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const POINTS: usize = 20_000;

/// What `pickle.dumps(batch, protocol=2)` writes, for the batch [`POINTS`] long.
fn relay_batch() -> Vec<u8> {
    let mut memo: u32 = 0;
    let mut out = vec![0x80, 2, b']'];
    let mut put = |out: &mut Vec<u8>| {
        if memo < 256 {
            out.extend_from_slice(&[b'q', memo as u8]);
        } else {
            out.push(b'r');
            out.extend_from_slice(&memo.to_le_bytes());
        }
        memo += 1;
    };
    put(&mut out);
    for chunk in 0..POINTS.div_ceil(1000) {
        out.push(b'(');
        for i in chunk * 1000..((chunk + 1) * 1000).min(POINTS) {
            let name = format!("servers.web{:02}.cpu.core{:03}.user", i % 50, i % 400);
            out.push(b'X');
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            put(&mut out);
            out.push(b'J');
            out.extend_from_slice(&(1_700_000_000 + (i as i32 % 60)).to_le_bytes());
            out.push(b'G');
            out.extend_from_slice(&(i as f64 * 0.25).to_be_bytes());
            out.push(0x86);
            put(&mut out);
            out.push(0x86);
            put(&mut out);
        }
        out.push(b'e');
    }
    out.push(b'.');
    out
}

fn bench(c: &mut Criterion) {
    let frame = relay_batch();
    let limits = Limits::default();
    let check = decode_frame(&frame, &limits);
    assert_eq!(check.points.len(), POINTS);
    assert!(check.error.is_none());

    let mut group = c.benchmark_group("pickle_protocol2_relay_batch");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("bytes", |b| {
        b.iter(|| decode_frame(black_box(&frame), &limits))
    });
    group.throughput(Throughput::Elements(POINTS as u64));
    group.bench_function("points", |b| {
        b.iter(|| decode_frame(black_box(&frame), &limits))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
