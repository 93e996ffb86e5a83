//! After warm-up, streaming a log-mel and resampling a stream allocate
//! nothing per chunk: a real-time callback must not wait on the allocator.
//! Counted per thread by allocation-counter's global allocator.

use hark_dsp::{DbConfig, LogMelStream, MelSpectrogramConfig, StreamResampler};

#[test]
fn streaming_allocates_nothing_per_chunk_after_warm_up() {
    let mel = MelSpectrogramConfig {
        sample_rate: 22050,
        n_fft: 1024,
        hop_length: Some(512),
        n_mels: 40,
        ..Default::default()
    };
    let mut logmel = LogMelStream::new(&mel, &DbConfig::default()).unwrap();
    let mut resampler = StreamResampler::new(48000, 22050).unwrap();
    let signal: Vec<f32> = (0..480_000)
        .map(|i| (i as f32 * 0.031).sin() * 0.5)
        .collect();
    let mut frames = 0usize;
    let mut run = |chunks: &[f32]| {
        for chunk in chunks.chunks(480) {
            resampler
                .push(chunk, |out| {
                    logmel.push(out, |_| frames += 1).unwrap();
                })
                .unwrap();
        }
    };
    run(&signal[..48_000]);
    let info = allocation_counter::measure(|| run(&signal[48_000..]));
    assert_eq!(info.count_total, 0, "allocations while streaming 9 s");
    assert!(frames > 400, "{frames} frames");
}
