//! The split policy of an experiment: test fold, validation fold (the
//! next one, or a group-aware share of the training folds) over hark-data's
//! fold and stratified splits, or the dataset's own split (a speaker tree's
//! phase map); a speaker dataset splits each speaker on their own
//! ([`speaker_split`]), and no speaker may be tested without having been
//! trained on.

use hark_data::{
    DatasetKind, Split, SplitRatios, fold_split, random_split, speaker_split, stratified_split,
    unseen_in_training,
};

use crate::{Error, ExperimentConfig, Prepared, Result, Validation};

impl Prepared {
    /// The split of every example for test fold `fold` (datasets with
    /// folds) or for the dataset's own or a seeded stratified split.
    ///
    /// # Errors
    /// [`Error::Config`] for a fold out of range or a fold asked of a
    /// dataset without folds.
    pub fn splits(&self, config: &ExperimentConfig, fold: Option<u32>) -> Result<Vec<Split>> {
        let splits = self.split_all(config, fold)?;
        if config.data.kind == DatasetKind::Speakers {
            let labels: Vec<usize> = self.dataset.examples.iter().map(|e| e.label).collect();
            if let Some(speaker) = unseen_in_training(&labels, &splits) {
                return Err(Error::Config {
                    field: "data.split",
                    rule: "must give every validation and test speaker training utterances",
                    got: format!("speaker {} has none", self.dataset.classes[speaker]),
                });
            }
        }
        Ok(splits)
    }

    fn split_all(&self, config: &ExperimentConfig, fold: Option<u32>) -> Result<Vec<Split>> {
        let mut splits = self.split_parts(config, fold)?;
        if config.data.validation == Validation::None {
            splits
                .iter_mut()
                .filter(|s| **s == Split::Val)
                .for_each(|s| *s = Split::Train);
        }
        Ok(splits)
    }

    fn split_parts(&self, config: &ExperimentConfig, fold: Option<u32>) -> Result<Vec<Split>> {
        let ex = &self.dataset.examples;
        let labels: Vec<usize> = ex.iter().map(|e| e.label).collect();
        let groups: Vec<&str> = ex.iter().map(|e| e.group.as_str()).collect();
        let folds = self.dataset.folds.filter(|_| !config.data.ignore_folds);
        match (folds, fold) {
            (Some(_), Some(k)) => {
                let present = self.folds();
                let Some(at) = present.iter().position(|&f| f == k) else {
                    return Err(Error::Config {
                        field: "fold",
                        rule: "must be one of the dataset's folds",
                        got: format!("{k} (folds: {present:?})"),
                    });
                };
                let folds: Vec<u32> = ex.iter().map(|e| e.fold.unwrap_or(0)).collect();
                let next = present[(at + 1) % present.len()];
                let validation = config.data.validation;
                let val = (validation == Validation::NextFold && present.len() > 2).then_some(next);
                let mut splits = fold_split(&folds, k, val);
                if val.is_none() && validation != Validation::None {
                    // A group-aware share of the training folds validates.
                    let train: Vec<usize> = (0..ex.len())
                        .filter(|&i| splits[i] == Split::Train)
                        .collect();
                    let ratios = SplitRatios {
                        train: 1.0 - config.data.split.ratios().val,
                        val: config.data.split.ratios().val,
                        test: 0.0,
                        stratified: true,
                    };
                    let sub = stratified_split(
                        &train.iter().map(|&i| labels[i]).collect::<Vec<_>>(),
                        &train.iter().map(|&i| groups[i]).collect::<Vec<_>>(),
                        ratios,
                        config.train.seed,
                    );
                    for (&i, s) in train.iter().zip(sub) {
                        splits[i] = s;
                    }
                }
                Ok(splits)
            }
            (None, Some(k)) => Err(Error::Config {
                field: "fold",
                rule: "needs a dataset with folds (and data.ignore_folds false)",
                got: k.to_string(),
            }),
            (_, None) if !config.data.split.ratios().stratified => Ok(random_split(
                ex.len(),
                config.data.split.ratios(),
                config.train.seed,
            )),
            (_, None) if ex.iter().all(|e| e.split.is_some()) => {
                Ok(ex.iter().map(|e| e.split.unwrap_or(Split::Train)).collect())
            }
            (_, None) if config.data.kind == DatasetKind::Speakers => Ok(speaker_split(
                &labels,
                &groups,
                config.data.split.ratios(),
                config.train.seed,
            )),
            (_, None) => Ok(stratified_split(
                &labels,
                &groups,
                config.data.split.ratios(),
                config.train.seed,
            )),
        }
    }
}
