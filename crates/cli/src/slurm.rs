//! `hark cv --emit slurm`: a submit script for a Slurm cluster. hark keeps
//! no scheduler of its own: the script hands Slurm an array job with one
//! task per fold (each `hark cv --fold K`), optionally preceded by an array
//! that fills the feature cache shard by shard (`hark features --shard
//! I/N`), and a merge job (`hark cv --merge`) that runs once every fold
//! has succeeded. Run it with `bash`; it prints the job ids it submitted.

use std::fmt::Write as _;
use std::path::PathBuf;

use hark_train::RunDir;

/// What the jobs ask Slurm for; `None` leaves a setting to the cluster's
/// defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` per task, e.g. `2:00:00`.
    pub time: Option<String>,
    /// `--cpus-per-task`; hark's `--threads` follows it.
    pub cpus: Option<usize>,
    /// `--mem` per task, e.g. `8G`.
    pub mem: Option<String>,
    /// `--gpus` per task.
    pub gpus: Option<usize>,
}

/// Everything the script names, all paths absolute: jobs start on other
/// machines, in other directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CvJobs {
    /// The `hark` binary.
    pub hark: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// `--set` overrides, passed on as given.
    pub overrides: Vec<String>,
    /// The cross-validation root (`--out` of the fold jobs).
    pub root: PathBuf,
    /// The directory jobs run in, so relative paths in the config mean
    /// what they meant where the script was made.
    pub workdir: PathBuf,
    /// The test folds, one array task each.
    pub folds: Vec<u32>,
    /// Feature-extraction tasks before training (0: none).
    pub shards: usize,
    /// Resources of every task.
    pub resources: Resources,
}

/// `s` quoted for a POSIX shell.
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// An array spec: `1-10` for consecutive folds, else `1,3,4`.
fn array_spec(folds: &[u32]) -> String {
    let consecutive = folds.windows(2).all(|w| w[1] == w[0] + 1);
    match (folds.first(), folds.last()) {
        (Some(a), Some(b)) if consecutive && a != b => format!("{a}-{b}"),
        _ => (folds.iter().map(u32::to_string))
            .collect::<Vec<_>>()
            .join(","),
    }
}

impl CvJobs {
    /// The submit script: each job's batch script goes to `sbatch` on its
    /// standard input, in a quoted here-document, so that the task's
    /// variables (`SLURM_ARRAY_TASK_ID`, `SLURM_CPUS_PER_TASK`) expand when
    /// the task runs, and only the job ids it depends on when it is
    /// submitted.
    pub fn script(&self) -> String {
        let q = |p: &PathBuf| quote(&p.display().to_string());
        let root = RunDir::new(&self.root);
        let logs = root.slurm_logs();
        let mut s = format!(
            "#!/bin/bash\n\
             # Cross-validation of {config} as Slurm jobs, written by `hark cv --emit slurm`.\n\
             # Submit with `bash THIS_FILE`; watch with `squeue --me`. Submitting again\n\
             # skips finished folds and resumes unfinished ones from their last\n\
             # checkpoint; `hark cv --merge {root}` summarises what has finished.\n\
             set -euo pipefail\n\
             mkdir -p {logs}\n\n",
            config = q(&self.config),
            root = q(&self.root),
            logs = q(&logs),
        );
        let hark = format!(
            "{} --threads \"${{SLURM_CPUS_PER_TASK:-1}}\"",
            q(&self.hark)
        );
        let mut config = format!("--config {}", q(&self.config));
        for o in &self.overrides {
            let _ = write!(config, " --set {}", quote(o));
        }
        // The merge job asks only for the partition: a minute of one CPU.
        let r = &self.resources;
        let mut light = format!("#SBATCH --chdir={}\n", q(&self.workdir));
        if let Some(p) = &r.partition {
            let _ = writeln!(light, "#SBATCH --partition={}", quote(p));
        }
        let mut directives = light.clone();
        for (flag, value) in [
            ("time", r.time.clone()),
            ("cpus-per-task", r.cpus.map(|c| c.to_string())),
            ("mem", r.mem.clone()),
            ("gpus", r.gpus.map(|g| g.to_string())),
        ] {
            if let Some(v) = value {
                let _ = writeln!(directives, "#SBATCH --{flag}={}", quote(&v));
            }
        }
        let job = |s: &mut String,
                   (var, name): (&str, &str),
                   after: Option<&str>,
                   directives: &str,
                   array: Option<String>,
                   log: &str,
                   command: String| {
            let dependency = after.map_or(String::new(), |a| {
                format!(" --dependency=afterok:${a} --kill-on-invalid-dep=yes")
            });
            let _ = write!(
                s,
                "{var}=$(sbatch --parsable{dependency} <<'JOB'\n#!/bin/bash\n\
                 #SBATCH --job-name={name}\n{directives}"
            );
            if let Some(array) = array {
                let _ = writeln!(s, "#SBATCH --array={array}");
            }
            let _ = write!(
                s,
                "#SBATCH --output={}\nexec {command}\nJOB\n)\necho \"{var}: job ${var}\"\n\n",
                quote(&logs.join(log).display().to_string())
            );
        };
        let mut after = None;
        if self.shards > 0 {
            let n = self.shards;
            job(
                &mut s,
                ("features", "hark-features"),
                None,
                &directives,
                Some(format!("1-{n}")),
                "features-%a.log",
                format!("{hark} features {config} --shard \"$SLURM_ARRAY_TASK_ID/{n}\""),
            );
            after = Some("features");
        }
        job(
            &mut s,
            ("folds", "hark-cv"),
            after,
            &directives,
            Some(array_spec(&self.folds)),
            "fold-%a.log",
            format!(
                "{hark} cv {config} --out {} --fold \"$SLURM_ARRAY_TASK_ID\"",
                q(&self.root)
            ),
        );
        job(
            &mut s,
            ("merge", "hark-cv-merge"),
            Some("folds"),
            &light,
            None,
            "merge.log",
            format!("{} cv --merge {}", q(&self.hark), q(&self.root)),
        );
        let _ = writeln!(
            s,
            "echo \"summary, once merged: {}\"",
            root.cv_summary_md().display()
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(quote("/a/b-c_d.toml"), "/a/b-c_d.toml");
        assert_eq!(quote("train.epochs=2"), "train.epochs=2");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn array_specs_are_ranges_when_consecutive() {
        assert_eq!(array_spec(&[1, 2, 3]), "1-3");
        assert_eq!(array_spec(&[1, 3, 4]), "1,3,4");
        assert_eq!(array_spec(&[5]), "5");
    }
}
