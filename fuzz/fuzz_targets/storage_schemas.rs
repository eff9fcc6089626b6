//! storage-schemas.conf on arbitrary text: operators' files are hand-written, so loading must
//! end in schemas or an error, never a panic, and the result must resolve any name.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let mut warnings = Vec::new();
    if let Ok(schemas) =
        carbide::schema::parse_storage_schemas("storage-schemas.conf", text, &mut warnings)
    {
        // The built-in default is always last and matches everything.
        assert!(schemas.last().is_some_and(|s| s.matches(text)));
    }
    let _ = carbide::schema::parse_carbon_retention(text);
});
