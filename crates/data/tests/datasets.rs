//! Every dataset layout on small generated fixtures: loading, labels, groups,
//! folds and splits, and errors that name the file, row and column.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use hark_data::{
    AnnotationColumns, Audio, ChunkOptions, DataError, Encoding, LoadOptions, Split, SplitRatios,
    assign_splits, chunk_dataset, fold_split, load_annotations, load_esc50, load_folders,
    load_speakers, load_urbansound8k, read_phase_map, write_phase_map, write_split_manifests,
    write_wav,
};
use hark_dsp::Tail;
use tempfile::TempDir;

/// Writes a short 16-bit mono WAV of `seconds` at 8 kHz.
fn wav(path: &Path, seconds: f64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let frames = (seconds * 8000.0) as usize;
    let samples = (0..frames).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
    write_wav(
        path,
        &Audio {
            samples,
            channels: 1,
            sample_rate: 8000,
        },
        Encoding::I16,
    )
    .unwrap();
}

const US8K_HEADER: &str = "slice_file_name,fsID,start,end,salience,fold,classID,class";

/// An UrbanSound8K tree: 3 classes x 10 folds, one recording (fsID) per class and fold.
fn urbansound8k(rows: impl Fn(&mut Vec<String>)) -> TempDir {
    let dir = TempDir::new().unwrap();
    let names = ["air_conditioner", "car_horn", "children_playing"];
    let mut lines = vec![US8K_HEADER.to_string()];
    for fold in 1..=10 {
        for (id, name) in names.iter().enumerate() {
            let fs_id = 1000 + fold * 10 + id;
            let file = format!("{fs_id}-{id}-0-0.wav");
            lines.push(format!("{file},{fs_id},0.0,0.1,1,{fold},{id},{name}"));
            wav(&dir.path().join(format!("audio/fold{fold}/{file}")), 0.1);
        }
    }
    rows(&mut lines);
    let csv = dir.path().join("metadata/UrbanSound8K.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    std::fs::write(csv, lines.join("\n") + "\n").unwrap();
    dir
}

fn us8k_err(rows: impl Fn(&mut Vec<String>)) -> String {
    let dir = urbansound8k(rows);
    load_urbansound8k(dir.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn urbansound8k_loads_classes_folds_and_groups() {
    let dir = urbansound8k(|_| {});
    let ds = load_urbansound8k(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(
        ds.classes,
        ["air_conditioner", "car_horn", "children_playing"]
    );
    assert_eq!((ds.examples.len(), ds.folds), (30, Some(10)));
    let e = &ds.examples[4];
    assert_eq!((e.label, e.fold, e.group.as_str()), (1, Some(2), "1021"));
    assert!(e.path.ends_with("audio/fold2/1021-1-0-0.wav"));
    let folds: Vec<u32> = ds.examples.iter().map(|e| e.fold.unwrap()).collect();
    let split = fold_split(&folds, 3, Some(4));
    assert_eq!(split.iter().filter(|&&s| s == Split::Test).count(), 3);
    assert_eq!(split.iter().filter(|&&s| s == Split::Val).count(), 3);
}

#[test]
fn urbansound8k_manifest_errors_name_row_and_column() {
    let err = us8k_err(|l| l[0] = l[0].replace(",salience", ",sal"));
    assert!(err.contains("missing column(s) salience"), "{err}");
    let err = us8k_err(|l| l[5] = l[5].replace(",1,2,", ",1,two,"));
    assert!(
        err.contains("row 5 (line 6), column fold: expected an integer, got \"two\""),
        "{err}"
    );
    let err = us8k_err(|l| l.push("x.wav,1,0.0,0.1,1,11,0,air_conditioner".into()));
    assert!(
        err.contains("row 31 (line 32), column fold: fold must be in 1..=10, got 11"),
        "{err}"
    );
    let err = us8k_err(|l| l.push("y.wav,1,0.0,0.1,1,1,0,car_horn".into()));
    assert!(err.contains("row 31 (line 32), column classID: classID 0 is \"car_horn\" here but \"air_conditioner\" at row 1"), "{err}");
    let err = us8k_err(|l| {
        let dup = l[1].clone();
        l.push(dup)
    });
    assert!(
        err.contains(
            "row 31 (line 32), column slice_file_name: duplicate \"1010-0-0-0.wav\", first at row 1"
        ),
        "{err}"
    );
    let err = us8k_err(|l| l[2] = l[2].replace(",0.0,0.1,", ",0.5,0.1,"));
    assert!(err.contains("row 2 (line 3), column start"), "{err}");
    assert!(err.contains("UrbanSound8K.csv"), "{err}");
}

#[test]
fn missing_files_are_skipped_and_counted_or_fail_under_strict() {
    let dir = urbansound8k(|_| {});
    for fold in [1, 2] {
        std::fs::remove_file(
            dir.path()
                .join(format!("audio/fold{fold}/{}-0-0-0.wav", 1000 + fold * 10)),
        )
        .unwrap();
    }
    let ds = load_urbansound8k(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!((ds.examples.len(), ds.skipped.len()), (28, 2));
    assert!(ds.skipped[0].reason.contains("missing"));
    let strict = LoadOptions {
        strict: true,
        ..Default::default()
    };
    let err = load_urbansound8k(dir.path(), &strict).unwrap_err();
    assert!(
        matches!(&err, DataError::BadFiles { count: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("1010-0-0-0.wav"), "{err}");
}

#[test]
fn a_class_filter_relabels_and_an_empty_result_is_an_error() {
    let dir = urbansound8k(|_| {});
    let keep = LoadOptions {
        classes: Some(vec!["children_playing".into(), "air_conditioner".into()]),
        ..Default::default()
    };
    let ds = load_urbansound8k(dir.path(), &keep).unwrap();
    assert_eq!(ds.classes, ["children_playing", "air_conditioner"]);
    assert_eq!(ds.class_counts(), [10, 10]);
    let unknown = LoadOptions {
        classes: Some(vec!["siren".into()]),
        ..Default::default()
    };
    let err = load_urbansound8k(dir.path(), &unknown)
        .unwrap_err()
        .to_string();
    assert!(err.contains("class filter names \"siren\""), "{err}");
    let dir = urbansound8k(|l| l.truncate(1));
    let err = load_urbansound8k(dir.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no examples left"), "{err}");
}

#[test]
fn esc50_and_its_esc10_subset() {
    let dir = TempDir::new().unwrap();
    let mut lines = vec!["filename,fold,target,category,esc10,src_file,take".to_string()];
    for (target, cat, esc10) in [
        (0, "dog", "True"),
        (1, "rooster", "False"),
        (2, "pig", "False"),
        (3, "cow", "False"),
        (4, "frog", "False"),
        (10, "rain", "True"),
    ] {
        for fold in 1..=5 {
            let file = format!("{fold}-{target}00-A-{target}.wav");
            lines.push(format!("{file},{fold},{target},{cat},{esc10},{target}00,A"));
            wav(&dir.path().join("audio").join(&file), 0.05);
        }
    }
    for t in 5..10 {
        lines.push(format!("1-x{t}-A-{t}.wav,1,{t},c{t},False,x{t},A"));
        wav(&dir.path().join(format!("audio/1-x{t}-A-{t}.wav")), 0.05);
    }
    std::fs::create_dir_all(dir.path().join("meta")).unwrap();
    std::fs::write(dir.path().join("meta/esc50.csv"), lines.join("\n")).unwrap();
    let all = load_esc50(dir.path(), false, &LoadOptions::default()).unwrap();
    assert_eq!(
        (all.classes.len(), all.examples.len(), all.folds),
        (11, 35, Some(5))
    );
    let esc10 = load_esc50(dir.path(), true, &LoadOptions::default()).unwrap();
    assert_eq!(esc10.kind, "esc10");
    assert_eq!(esc10.classes, ["dog", "rain"]);
    assert_eq!(esc10.class_counts(), [5, 5]);
    assert_eq!(esc10.examples[5].group, "1000");
}

#[test]
fn folders_chunk_files_and_keep_each_files_chunks_together() {
    let dir = TempDir::new().unwrap();
    for (class, lens) in [
        ("car", [4.5, 2.0, 1.0]),
        ("drone", [6.0, 3.9, 2.5]),
        ("speech", [2.0, 2.0, 8.0]),
    ] {
        for (i, secs) in lens.iter().enumerate() {
            wav(&dir.path().join(format!("{class}/{i}.wav")), *secs);
        }
    }
    std::fs::write(dir.path().join("car/notes.txt"), "not audio").unwrap();
    let whole = load_folders(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!((whole.classes.len(), whole.examples.len()), (3, 9));
    let chunks = ChunkOptions {
        seconds: 2.0,
        hop_seconds: None,
        tail: Tail::Drop,
    };
    let mut ds = chunk_dataset(whole.clone(), &chunks, false).unwrap();
    // car: 2 + 1 (1.0 s skipped), drone: 3 + 1 + 1, speech: 1 + 1 + 4.
    assert_eq!(ds.class_counts(), [3, 5, 6]);
    assert_eq!(ds.skipped.len(), 1);
    assert!(ds.skipped[0].reason.contains("shorter than one 2 s chunk"));
    let span = ds.examples[1].span.unwrap();
    assert_eq!((span.start, span.end), (2.0, 4.0));
    assign_splits(
        &mut ds,
        SplitRatios {
            train: 0.6,
            val: 0.2,
            test: 0.2,
            ..Default::default()
        },
        42,
    );
    let mut split_of: BTreeMap<&str, Split> = BTreeMap::new();
    for e in &ds.examples {
        assert_eq!(
            *split_of.entry(&e.group).or_insert(e.split.unwrap()),
            e.split.unwrap(),
            "chunks of {} straddle splits",
            e.group
        );
    }
    let out = TempDir::new().unwrap();
    write_split_manifests(&ds, out.path()).unwrap();
    let train = std::fs::read_to_string(out.path().join("train.csv")).unwrap();
    assert!(train.starts_with("path,label,class,group,start,end\n"));
    let rows: usize = ["train", "val", "test"]
        .iter()
        .map(|s| {
            std::fs::read_to_string(out.path().join(format!("{s}.csv")))
                .unwrap()
                .lines()
                .count()
                - 1
        })
        .sum();
    assert_eq!(rows, ds.examples.len());
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("split_summary.json")).unwrap())
            .unwrap();
    let total: u64 = summary
        .as_object()
        .unwrap()
        .values()
        .flat_map(|v| v.as_object().unwrap().values())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total as usize, ds.examples.len());
}

fn speaker_tree() -> TempDir {
    let dir = TempDir::new().unwrap();
    for spk in ["id10001", "id10002", "id10003"] {
        for ctx in ["ctxA", "ctxB", "ctxC", "ctxD", "ctxE"] {
            for f in 0..2 {
                wav(
                    &dir.path().join(format!("raw/{spk}/{ctx}/{f:05}.wav")),
                    0.05,
                );
            }
        }
    }
    dir
}

#[test]
fn speaker_splits_never_share_a_context_and_round_trip_through_the_phase_map() {
    let dir = speaker_tree();
    let mut ds = load_speakers(dir.path(), true, &LoadOptions::default()).unwrap();
    assert_eq!((ds.classes.len(), ds.examples.len()), (3, 30));
    assign_splits(
        &mut ds,
        SplitRatios {
            train: 0.6,
            val: 0.2,
            test: 0.2,
            ..Default::default()
        },
        5,
    );
    let contexts: HashSet<(&str, Split)> = ds
        .examples
        .iter()
        .map(|e| (e.group.as_str(), e.split.unwrap()))
        .collect();
    assert_eq!(contexts.len(), 15, "each context in exactly one split");
    for label in 0..3 {
        let count = |s| {
            ds.examples
                .iter()
                .filter(|e| e.label == label && e.split == Some(s))
                .count()
        };
        assert_eq!(
            (count(Split::Train), count(Split::Val), count(Split::Test)),
            (6, 2, 2)
        );
    }
    let map = dir.path().join("phase_map.csv");
    write_phase_map(&ds, dir.path(), &map).unwrap();
    let text = std::fs::read_to_string(&map).unwrap();
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with("raw/id10001/ctxA/00000.wav,id10001,ctxA,"),
        "{text}"
    );
    let mut reread = load_speakers(dir.path(), true, &LoadOptions::default()).unwrap();
    read_phase_map(&mut reread, dir.path(), &map).unwrap();
    assert_eq!(reread, ds);
    std::fs::write(&map, text.replacen(",1\n", ",3\n", 1)).unwrap();
    let err = read_phase_map(&mut reread, dir.path(), &map)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("column phase: expected 1, 2 or 4, got 3"),
        "{err}"
    );
}

#[test]
fn annotation_csv_appends_wav_and_orders_integer_labels_numerically() {
    let dir = TempDir::new().unwrap();
    let mut csv = String::from("file,label\n");
    for (i, label) in [0, 1, 10, 2, 1, 0].iter().enumerate() {
        csv.push_str(&format!("clip{i},{label}\n"));
        wav(&dir.path().join(format!("audio/clip{i}.wav")), 0.05);
    }
    let path = dir.path().join("annotations.csv");
    std::fs::write(&path, csv).unwrap();
    let ds = load_annotations(
        &path,
        &dir.path().join("audio"),
        &AnnotationColumns::default(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(ds.classes, ["0", "1", "2", "10"]);
    let labels: Vec<usize> = ds.examples.iter().map(|e| e.label).collect();
    assert_eq!(labels, [0, 1, 3, 2, 1, 0]);
    assert!(ds.examples[2].path.ends_with("audio/clip2.wav"));
    let cols = AnnotationColumns {
        label: "class".into(),
        ..Default::default()
    };
    let err = load_annotations(&path, dir.path(), &cols, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing column(s) class"), "{err}");
}

#[test]
fn a_missing_manifest_or_root_is_an_error_naming_it() {
    let dir = TempDir::new().unwrap();
    let err = load_urbansound8k(dir.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("UrbanSound8K.csv: manifest file not found"),
        "{err}"
    );
    let err = load_folders(&PathBuf::from("/no/such/root"), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("/no/such/root"), "{err}");
    let err = load_speakers(dir.path(), true, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no raw/ folder"), "{err}");
}
