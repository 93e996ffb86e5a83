//! The manifest reader on arbitrary CSV bytes, as an UrbanSound8K manifest
//! and as an annotation CSV: a dataset or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("metadata");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(meta.join("UrbanSound8K.csv"), data).unwrap();
    let options = hark_data::LoadOptions::default();
    let _ = hark_data::load_urbansound8k(dir.path(), &options);
    let csv = dir.path().join("labels.csv");
    std::fs::write(&csv, data).unwrap();
    let columns = hark_data::AnnotationColumns::default();
    let _ = hark_data::load_annotations(&csv, dir.path(), &columns, &options);
});
