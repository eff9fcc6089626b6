//! storage-aggregation.conf on arbitrary text: loading must end in rules or an error, never a
//! panic, and every kept xFilesFactor must be one whisper accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let mut warnings = Vec::new();
    if let Ok(rules) =
        carbide::schema::parse_storage_aggregation("storage-aggregation.conf", text, &mut warnings)
    {
        assert!(rules.last().is_some_and(|r| r.matches(text)));
        for rule in &rules {
            assert!(rule
                .x_files_factor()
                .is_none_or(|x| (0.0..=1.0).contains(&x)));
        }
    }
});
