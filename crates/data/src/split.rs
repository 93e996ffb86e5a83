//! Train/validation/test assignment: predefined folds (leave one out) and
//! seeded, stratified, group-aware ratio splits.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The part of an experiment an example belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Fitting the model.
    Train,
    /// Model selection and early stopping.
    Val,
    /// Held out for the final score.
    Test,
}

impl Split {
    /// The lowercase name used in manifests: `train`, `val`, `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Val => "val",
            Self::Test => "test",
        }
    }
}

/// Leave-one-fold-out: examples of `test_fold` are test, those of
/// `val_fold` (if any) validation, the rest training.
pub fn fold_split(folds: &[u32], test_fold: u32, val_fold: Option<u32>) -> Vec<Split> {
    folds
        .iter()
        .map(|&f| match f {
            f if f == test_fold => Split::Test,
            f if Some(f) == val_fold => Split::Val,
            _ => Split::Train,
        })
        .collect()
}

/// Fractions of a ratio split; they need not sum to exactly 1 (they are
/// normalised).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitRatios {
    /// Share of training examples.
    pub train: f64,
    /// Share of validation examples.
    pub val: f64,
    /// Share of test examples.
    pub test: f64,
    /// Divide each class in these shares and keep groups whole; `false` is
    /// a plain random split that ignores labels and groups (seed 001's
    /// `torch.utils.data.random_split`, see [`random_split`]). Default: true.
    #[serde(skip_serializing_if = "is_true")]
    pub stratified: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

impl SplitRatios {
    /// The train, validation and test shares, normalised to sum to 1.
    pub fn shares(&self) -> [f64; 3] {
        let total = (self.train + self.val + self.test).max(f64::MIN_POSITIVE);
        [self.train / total, self.val / total, self.test / total]
    }
}

impl Default for SplitRatios {
    fn default() -> Self {
        Self {
            train: 0.8,
            val: 0.1,
            test: 0.1,
            stratified: true,
        }
    }
}

/// Assigns every example to a split so that each class is divided in about
/// the given ratios, no group (a recording, a speaker's context, the chunks
/// of one file) spans two splits, and the same seed gives the same split on
/// any machine.
///
/// Groups are given the class most of their examples have, shuffled per
/// class with ChaCha8 from `seed` (after sorting, so input order does not
/// matter), and each goes to the split furthest below its target share.
pub fn stratified_split(
    labels: &[usize],
    groups: &[&str],
    ratios: SplitRatios,
    seed: u64,
) -> Vec<Split> {
    assert_eq!(labels.len(), groups.len(), "one group per example");
    // Examples of each group, and each group's majority label.
    let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, g) in groups.iter().enumerate() {
        members.entry(g).or_default().push(i);
    }
    let mut by_class: BTreeMap<usize, Vec<(&str, usize)>> = BTreeMap::new();
    for (g, idx) in &members {
        let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
        idx.iter()
            .for_each(|&i| *counts.entry(labels[i]).or_default() += 1);
        let label = counts
            .iter()
            .max_by_key(|&(l, c)| (*c, std::cmp::Reverse(*l)))
            .map(|(l, _)| *l)
            .expect("non-empty group");
        by_class.entry(label).or_default().push((g, idx.len()));
    }
    let shares = ratios.shares();
    let mut out = vec![Split::Train; labels.len()];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (_, mut class_groups) in by_class {
        class_groups.shuffle(&mut rng);
        let class_total: usize = class_groups.iter().map(|(_, n)| n).sum();
        let mut filled = [0usize; 3];
        for (g, n) in class_groups {
            let pick = neediest(&shares, &filled, class_total);
            filled[pick] += n;
            members[g].iter().for_each(|&i| out[i] = ORDER[pick]);
        }
    }
    out
}

/// A seeded random split of `n` examples by `ratios` that ignores labels
/// and groups, as seed 001 makes it with `torch.utils.data.random_split`:
/// every part with a share but the last gets `round(n * share)` examples
/// (ties to even, as Python rounds), the last the rest, over a shuffled
/// order of the examples.
pub fn random_split(n: usize, ratios: SplitRatios, seed: u64) -> Vec<Split> {
    let shares = ratios.shares();
    let used: Vec<usize> = (0..3).filter(|&p| shares[p] > 0.0).collect();
    let mut counts = [0usize; 3];
    let mut left = n;
    for (k, &p) in used.iter().enumerate() {
        let take = match k + 1 == used.len() {
            true => left,
            false => ((n as f64 * shares[p]).round_ties_even() as usize).min(left),
        };
        counts[p] = take;
        left -= take;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut out = vec![Split::Train; n];
    let parts = ORDER
        .iter()
        .zip(counts)
        .flat_map(|(&s, c)| std::iter::repeat_n(s, c));
    for (&i, part) in order.iter().zip(parts) {
        out[i] = part;
    }
    out
}

/// The parts in the order of [`SplitRatios::shares`].
const ORDER: [Split; 3] = [Split::Train, Split::Val, Split::Test];

/// The part (an index into [`ORDER`]) with the largest shortfall of its
/// share of `total` against `filled`: the next group goes there (ties to
/// the earlier part; training when every share is zero).
fn neediest(shares: &[f64; 3], filled: &[usize; 3], total: usize) -> usize {
    (0..3)
        .filter(|&s| shares[s] > 0.0)
        .max_by(|&a, &b| {
            let gap = |s: usize| shares[s] * total as f64 - filled[s] as f64;
            gap(a).total_cmp(&gap(b)).then(b.cmp(&a))
        })
        .unwrap_or(0)
}

/// A split for speaker identification, where the classes are speakers and
/// every speaker must be in training, validation and test: each speaker's
/// utterances are split on their own. A speaker with at least 3 sessions
/// (`groups`) keeps them whole: one goes to test, one to validation, the
/// rest to whichever part is furthest below its share. A speaker with fewer
/// splits their utterances, at least one each to validation and test when
/// there are 3 or more (fewer all train). Seeded, deterministic.
pub fn speaker_split(
    labels: &[usize],
    groups: &[&str],
    ratios: SplitRatios,
    seed: u64,
) -> Vec<Split> {
    assert_eq!(labels.len(), groups.len(), "one group per example");
    let mut by_speaker: BTreeMap<usize, BTreeMap<&str, Vec<usize>>> = BTreeMap::new();
    for (i, (&l, &g)) in labels.iter().zip(groups).enumerate() {
        by_speaker
            .entry(l)
            .or_default()
            .entry(g)
            .or_default()
            .push(i);
    }
    let shares = ratios.shares();
    let mut out = vec![Split::Train; labels.len()];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for sessions in by_speaker.into_values() {
        // Units: whole sessions, or single utterances.
        let mut units: Vec<Vec<usize>> = if sessions.len() >= 3 {
            sessions.into_values().collect()
        } else {
            sessions.into_values().flatten().map(|i| vec![i]).collect()
        };
        units.shuffle(&mut rng);
        let speaker_total: usize = units.iter().map(Vec::len).sum();
        let mut filled = [0usize; 3];
        for (k, unit) in units.iter().enumerate() {
            let pick = match k {
                // The first two go to test and validation, when there are enough.
                0 if units.len() >= 3 => 2,
                1 if units.len() >= 3 => 1,
                _ => neediest(&shares, &filled, speaker_total),
            };
            filled[pick] += unit.len();
            unit.iter().for_each(|&i| out[i] = ORDER[pick]);
        }
    }
    out
}

/// Checks that every class in validation or test has training examples;
/// returns the first that does not (a speaker the model cannot know).
pub fn unseen_in_training(labels: &[usize], splits: &[Split]) -> Option<usize> {
    let trained: std::collections::BTreeSet<usize> = (labels.iter().zip(splits))
        .filter(|(_, s)| **s == Split::Train)
        .map(|(l, _)| *l)
        .collect();
    (labels.iter().zip(splits))
        .find(|(l, s)| **s != Split::Train && !trained.contains(l))
        .map(|(l, _)| *l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_split_sizes_its_parts_as_seed_001_does() {
        let ratios = |train, val, test| SplitRatios {
            train,
            val,
            test,
            stratified: false,
        };
        let count = |s: &[Split], p| s.iter().filter(|&&x| x == p).count();
        // Seed 001: num_train = round(138 * 0.8) = 110, the rest tests.
        let s = random_split(138, ratios(0.8, 0.0, 0.2), 5);
        assert_eq!(
            [Split::Train, Split::Val, Split::Test].map(|p| count(&s, p)),
            [110, 0, 28]
        );
        // Python's round: 4.5 goes to 4; a zero share gets nothing.
        let s = random_split(9, ratios(0.45, 0.0, 0.45), 5);
        assert_eq!([count(&s, Split::Train), count(&s, Split::Test)], [4, 5]);
        let s = random_split(10, ratios(0.8, 0.1, 0.1), 5);
        assert_eq!(
            [Split::Train, Split::Val, Split::Test].map(|p| count(&s, p)),
            [8, 1, 1]
        );
        // Seeded: the same seed gives the same split, another a different one.
        let a = random_split(100, ratios(0.8, 0.0, 0.2), 1);
        assert_eq!(a, random_split(100, ratios(0.8, 0.0, 0.2), 1));
        assert_ne!(a, random_split(100, ratios(0.8, 0.0, 0.2), 2));
        // The test examples are spread over the whole list, not its end.
        let first_half = a[..50].iter().filter(|&&x| x == Split::Test).count();
        assert!((3..=17).contains(&first_half), "{first_half}");
    }

    fn data(
        n_classes: usize,
        groups_per_class: usize,
        per_group: usize,
    ) -> (Vec<usize>, Vec<String>) {
        let mut labels = Vec::new();
        let mut groups = Vec::new();
        for c in 0..n_classes {
            for g in 0..groups_per_class {
                for _ in 0..per_group {
                    labels.push(c);
                    groups.push(format!("c{c}-g{g}"));
                }
            }
        }
        (labels, groups)
    }

    #[test]
    fn folds_leave_one_out_with_an_optional_validation_fold() {
        let folds = [1, 2, 3, 1, 2];
        assert_eq!(
            fold_split(&folds, 2, Some(3)),
            [
                Split::Train,
                Split::Test,
                Split::Val,
                Split::Train,
                Split::Test
            ]
        );
        assert_eq!(fold_split(&folds, 1, None)[0], Split::Test);
    }

    #[test]
    fn ratio_split_is_stratified_grouped_and_seeded() {
        let (labels, groups) = data(3, 20, 3);
        let g: Vec<&str> = groups.iter().map(String::as_str).collect();
        let split = stratified_split(&labels, &g, SplitRatios::default(), 7);
        assert_eq!(
            split,
            stratified_split(&labels, &g, SplitRatios::default(), 7)
        );
        assert_ne!(
            split,
            stratified_split(&labels, &g, SplitRatios::default(), 8)
        );
        for c in 0..3 {
            let count = |s| {
                (0..labels.len())
                    .filter(|&i| labels[i] == c && split[i] == s)
                    .count()
            };
            assert_eq!(
                (count(Split::Train), count(Split::Val), count(Split::Test)),
                (48, 6, 6),
                "class {c}"
            );
        }
        let mut seen: BTreeMap<&str, Split> = BTreeMap::new();
        for (i, g) in g.iter().enumerate() {
            assert_eq!(
                *seen.entry(g).or_insert(split[i]),
                split[i],
                "group {g} spans two splits"
            );
        }
    }

    #[test]
    fn input_order_does_not_change_the_split() {
        let (labels, groups) = data(2, 10, 2);
        let g: Vec<&str> = groups.iter().map(String::as_str).collect();
        let split = stratified_split(&labels, &g, SplitRatios::default(), 1);
        let rev_labels: Vec<usize> = labels.iter().rev().copied().collect();
        let rev_groups: Vec<&str> = g.iter().rev().copied().collect();
        let mut rev_split = stratified_split(&rev_labels, &rev_groups, SplitRatios::default(), 1);
        rev_split.reverse();
        assert_eq!(split, rev_split);
    }

    #[test]
    fn a_zero_ratio_gets_nothing() {
        let (labels, groups) = data(2, 10, 1);
        let g: Vec<&str> = groups.iter().map(String::as_str).collect();
        let split = stratified_split(
            &labels,
            &g,
            SplitRatios {
                train: 0.75,
                val: 0.0,
                test: 0.25,
                ..Default::default()
            },
            3,
        );
        assert!(!split.contains(&Split::Val));
        for c in 0..2 {
            let test = (0..labels.len())
                .filter(|&i| labels[i] == c && split[i] == Split::Test)
                .count();
            assert!(
                (2..=3).contains(&test),
                "class {c}: 2.5 of 10 expected in test, got {test}"
            );
        }
    }

    #[test]
    fn every_speaker_is_in_training_validation_and_test() {
        // Speaker 0: 5 sessions of 10; speaker 1: 2 sessions of 6; speaker
        // 2: one session of 4; speaker 3: 2 utterances.
        let mut labels = Vec::new();
        let mut groups = Vec::new();
        for (speaker, sessions, per) in [(0, 5, 10), (1, 2, 6), (2, 1, 4), (3, 1, 2)] {
            for s in 0..sessions {
                for _ in 0..per {
                    labels.push(speaker);
                    groups.push(format!("s{speaker}/c{s}"));
                }
            }
        }
        let g: Vec<&str> = groups.iter().map(String::as_str).collect();
        let splits = speaker_split(&labels, &g, SplitRatios::default(), 3);
        for speaker in 0..3 {
            for part in [Split::Train, Split::Val, Split::Test] {
                assert!(
                    (0..labels.len()).any(|i| labels[i] == speaker && splits[i] == part),
                    "speaker {speaker} has no {part:?}"
                );
            }
        }
        // Speaker 0's sessions stay whole; speaker 3's two utterances train.
        for (i, gi) in g.iter().enumerate() {
            let j = g.iter().position(|x| x == gi).unwrap();
            if labels[i] == 0 {
                assert_eq!(splits[i], splits[j]);
            }
        }
        assert!((0..labels.len()).all(|i| labels[i] != 3 || splits[i] == Split::Train));
        assert_eq!(unseen_in_training(&labels, &splits), None);
        assert_eq!(
            speaker_split(&labels, &g, SplitRatios::default(), 3),
            splits
        );
        // A test example of a speaker never trained on is named.
        let mut bad = splits.clone();
        (0..labels.len())
            .filter(|&i| labels[i] == 1)
            .for_each(|i| bad[i] = Split::Test);
        assert_eq!(unseen_in_training(&labels, &bad), Some(1));
    }
}
