//! Event-level scoring, onset-based as DCASE's sed_eval: a detection is
//! right when its class matches a reference event's and its onset lies
//! within a collar (±250 ms by default) of the reference onset; each
//! reference event matches at most one detection.

use serde::Serialize;

/// The DCASE collar, in seconds.
pub const DEFAULT_COLLAR: f64 = 0.25;

/// Precision, recall, F1 and false alarms of detected events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventScores {
    /// The onset collar, in seconds.
    pub collar: f64,
    /// Seconds of audio scored.
    pub seconds: f64,
    /// Reference events.
    pub reference: usize,
    /// Detected events.
    pub detected: usize,
    /// Detections matched to a reference event.
    pub true_positives: usize,
    /// Detections matched to none.
    pub false_positives: usize,
    /// Reference events matched by none.
    pub false_negatives: usize,
    /// `tp / detected` (1 when nothing was detected and nothing was there).
    pub precision: f64,
    /// `tp / reference` (1 when there was nothing to find).
    pub recall: f64,
    /// The harmonic mean of precision and recall.
    pub f1: f64,
    /// False positives per hour of audio.
    pub false_alarms_per_hour: f64,
}

/// Scores `detected` against `reference`, both `(class, onset)` pairs, over
/// `seconds` of audio.
pub fn score_events(
    reference: &[(usize, f64)],
    detected: &[(usize, f64)],
    collar: f64,
    seconds: f64,
) -> EventScores {
    let classes = reference
        .iter()
        .chain(detected)
        .map(|e| e.0 + 1)
        .max()
        .unwrap_or(0);
    let mut tp = 0;
    for c in 0..classes {
        let onsets = |events: &[(usize, f64)]| {
            let mut v: Vec<f64> = events.iter().filter(|e| e.0 == c).map(|e| e.1).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let (refs, dets) = (onsets(reference), onsets(detected));
        // With equal collars on a line, matching each reference to the
        // earliest detection within reach is a maximum matching.
        let (mut i, mut j) = (0, 0);
        while i < refs.len() && j < dets.len() {
            if dets[j] < refs[i] - collar {
                j += 1;
            } else if dets[j] > refs[i] + collar {
                i += 1;
            } else {
                tp += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let ratio = |n: usize, d: usize| if d == 0 { 1.0 } else { n as f64 / d as f64 };
    let (precision, recall) = (ratio(tp, detected.len()), ratio(tp, reference.len()));
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    let false_positives = detected.len() - tp;
    EventScores {
        collar,
        seconds,
        reference: reference.len(),
        detected: detected.len(),
        true_positives: tp,
        false_positives,
        false_negatives: reference.len() - tp,
        precision,
        recall,
        f1,
        false_alarms_per_hour: if seconds > 0.0 {
            false_positives as f64 * 3600.0 / seconds
        } else {
            0.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onsets_within_the_collar_of_the_same_class_match_once() {
        let reference = [(1, 1.0), (1, 5.0), (2, 9.0), (1, 20.0)];
        // 1.2 matches 1.0; 1.3 is a second hit on it (false positive); 5.3
        // is outside the collar; 9.1 has the wrong class; 20.0 matches.
        let detected = [(1, 1.2), (1, 1.3), (1, 5.3), (1, 9.1), (1, 20.0)];
        let s = score_events(&reference, &detected, 0.25, 1800.0);
        assert_eq!(
            (s.true_positives, s.false_positives, s.false_negatives),
            (2, 3, 2)
        );
        assert!((s.precision - 0.4).abs() < 1e-12 && (s.recall - 0.5).abs() < 1e-12);
        assert!((s.f1 - 2.0 * 0.4 * 0.5 / 0.9).abs() < 1e-12);
        assert!((s.false_alarms_per_hour - 6.0).abs() < 1e-12);
    }

    #[test]
    fn greedy_matching_finds_the_most_pairs() {
        // 1.0 could take 1.2 or 0.8; taking the earlier leaves 1.2 for 1.4.
        let s = score_events(&[(0, 1.0), (0, 1.4)], &[(0, 0.8), (0, 1.2)], 0.25, 10.0);
        assert_eq!(s.true_positives, 2);
    }

    #[test]
    fn nothing_to_find_and_nothing_found_is_perfect() {
        let s = score_events(&[], &[], 0.25, 60.0);
        assert_eq!((s.precision, s.recall, s.f1), (1.0, 1.0, 1.0));
        let s = score_events(&[(0, 1.0)], &[], 0.25, 60.0);
        assert_eq!((s.recall, s.f1), (0.0, 0.0));
    }
}
