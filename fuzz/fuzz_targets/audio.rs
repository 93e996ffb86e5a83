//! The compressed-audio path (symphonia's FLAC, MP3, Ogg Vorbis and MP4
//! readers behind hark's probe) on arbitrary bytes: an error or audio,
//! never a panic, and never more memory than hark's decode bound allows.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // No extension: the probe goes by the bytes alone, as for a mislabelled file.
    if let Ok(audio) = hark_data::decode_audio(data.to_vec(), Path::new("fuzz")) {
        assert_eq!(audio.samples.len() % audio.channels, 0);
        assert!(audio.samples.iter().all(|v| v.is_finite()));
    }
});
