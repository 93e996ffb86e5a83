//! The RIFF scanner and WAV decoder on arbitrary bytes, whole and streamed:
//! an error or audio, never a panic, and never more memory than the input
//! justifies.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz.wav");
    if let Ok(audio) = hark_data::decode_wav(data.to_vec(), name) {
        assert_eq!(audio.samples.len() % audio.channels, 0);
        assert!(audio.samples.iter().all(|v| v.is_finite()));
    }
    if let Ok(mut stream) = hark_data::PcmStream::open(Cursor::new(data), name, None) {
        let mut chunk = Vec::new();
        while let Ok(n) = stream.read_mono(&mut chunk) {
            if n == 0 {
                break;
            }
        }
    }
});
