//! The run directory's pictures: sizes, colours where the numbers say, text
//! drawn, and bad input refused.

use std::path::Path;

use hark_train::{EpochMetrics, Error, confusion_png, curves_png};

fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn pixel(img: &(u32, u32, Vec<u8>), x: u32, y: u32) -> [u8; 3] {
    let at = ((y * img.0 + x) * 3) as usize;
    [img.2[at], img.2[at + 1], img.2[at + 2]]
}

#[test]
fn confusion_cells_are_coloured_by_row_share_and_labelled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("confusion.png");
    let classes: Vec<String> = ["dog_bark", "siren", "jackhammer"]
        .map(String::from)
        .to_vec();
    // Row 0 all correct, row 1 split evenly, row 2 always predicted as 0.
    let counts = vec![vec![10, 0, 0], vec![0, 5, 5], vec![7, 0, 0]];
    confusion_png(&path, &counts, &classes, "test").unwrap();
    let img = read_png(&path);
    // 3 classes get the largest cells (64 px); the grid is square.
    assert!(img.0 > 3 * 64 && img.1 > 3 * 64, "{}x{}", img.0, img.1);

    // Find the grid: the top-left cell is the darkest colour (share 1).
    let dark = [8, 48, 107];
    let (mut gx, mut gy) = (None, None);
    'find: for y in 0..img.1 {
        for x in 0..img.0 {
            if pixel(&img, x, y) == dark {
                (gx, gy) = (Some(x), Some(y));
                break 'find;
            }
        }
    }
    let (gx, gy) = (gx.expect("a full-share cell"), gy.unwrap());
    // Sample each cell near its corner, away from the count text.
    let cell = |t: u32, p: u32| pixel(&img, gx + p * 64 + 3, gy + t * 64 + 3);
    assert_eq!(cell(0, 0), dark);
    assert_eq!(cell(0, 1), [255, 255, 255]);
    assert_eq!(cell(2, 0), dark, "row-normalised: 7 of 7 is full colour");
    let half = cell(1, 1);
    assert_eq!(half, cell(1, 2));
    assert!(
        half[0] > 100 && half[0] < 160,
        "half share is mid colour: {half:?}"
    );
    // Counts are drawn: the full cell holds white text pixels.
    let text = (gx..gx + 64)
        .flat_map(|x| (gy..gy + 64).map(move |y| (x, y)))
        .filter(|&(x, y)| pixel(&img, x, y)[2] > 200)
        .count();
    assert!(text > 10, "no count drawn in the first cell");
    // Class names are drawn left of the grid.
    let label_ink = (0..gx.saturating_sub(4))
        .flat_map(|x| (gy..gy + 3 * 64).map(move |y| (x, y)))
        .filter(|&(x, y)| pixel(&img, x, y)[0] < 128)
        .count();
    assert!(label_ink > 50, "no class names on the y axis");
}

#[test]
fn confusion_refuses_a_matrix_of_the_wrong_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.png");
    let err = confusion_png(&path, &[vec![1, 2]], &["a".into(), "b".into()], "t").unwrap_err();
    assert!(matches!(err, Error::Metrics(_)), "{err}");
    assert!(!path.exists());
}

#[test]
fn many_classes_still_draw_without_labels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.png");
    let n = 400;
    let classes: Vec<String> = (0..n).map(|i| format!("speaker{i}")).collect();
    let counts: Vec<Vec<u64>> = (0..n)
        .map(|t| (0..n).map(|p| u64::from(t == p)).collect())
        .collect();
    confusion_png(&path, &counts, &classes, "speakers").unwrap();
    let img = read_png(&path);
    assert!(img.0 >= 3 * n as u32 && img.0 < 1500, "{}", img.0);
}

#[test]
fn curves_draw_train_and_validation_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("curves.png");
    let history: Vec<EpochMetrics> = (1..=5)
        .map(|e| EpochMetrics {
            epoch: e,
            lr: 1e-3,
            train_loss: 2.0 / e as f64,
            train_accuracy: 0.2 * e as f64 - 0.1,
            val_loss: Some(2.2 / e as f64),
            val_accuracy: Some(0.15 * e as f64),
            seconds: 1.0,
            samples_per_second: 100.0,
        })
        .collect();
    curves_png(&path, &history).unwrap();
    let img = read_png(&path);
    assert_eq!((img.0, img.1), (960, 400));
    let count = |colour: [u8; 3]| {
        (0..img.0)
            .flat_map(|x| (0..img.1).map(move |y| (x, y)))
            .filter(|&(x, y)| pixel(&img, x, y) == colour)
            .count()
    };
    assert!(count([8, 90, 180]) > 200, "no training line");
    assert!(count([230, 110, 20]) > 200, "no validation line");
    // One epoch without validation draws too.
    curves_png(&path, &history[..1]).unwrap();
}

#[test]
fn bars_are_drawn_longest_for_the_largest_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bars.png");
    let bars = vec![("16000 Hz".to_string(), 10), ("44100 Hz".to_string(), 40)];
    hark_train::bars_png(&path, "files per sample rate", &bars).unwrap();
    let img = read_png(&path);
    assert_eq!(img.1, 90 + 22 * 2);
    // Count the bar colour along each bar's row: the second is four times
    // as long as the first.
    let blue = |y: u32| {
        (0..img.0)
            .filter(|&x| pixel(&img, x, y) == [8, 90, 180])
            .count()
    };
    let rows: Vec<usize> = (0..img.1).map(blue).filter(|&n| n > 0).collect();
    let (short, long) = (rows.iter().min().unwrap(), rows.iter().max().unwrap());
    assert!(
        (*long as f64 / *short as f64 - 4.0).abs() < 0.1,
        "{short} {long}"
    );
}

#[test]
fn specs_png_draws_a_row_per_class_and_a_tile_per_example() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("specs.png");
    let classes: Vec<String> = [
        "dog",
        "siren",
        "a name far longer than any tile label would show",
    ]
    .map(String::from)
    .to_vec();
    // A rising ramp in each tile; class 1 gets more tiles than a row holds.
    let tile = |label| hark_train::SpecTile {
        label,
        values: (0..8 * 20).map(|i| i as f32).collect(),
        rows: 8,
        frames: 20,
    };
    let tiles: Vec<_> = [0, 1, 1, 1, 1, 1, 1, 2, 7].into_iter().map(tile).collect();
    hark_train::specs_png(&path, "inputs", &classes, &tiles).unwrap();
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    // Three rows of 72 px tiles with 6 px gaps under a 34 px title.
    assert_eq!(info.height, 34 + 3 * 78 + 6);
    let (w, px) = (info.width as usize, |x: usize, y: usize, b: &[u8]| {
        let i = (y * info.width as usize + x) * 3;
        [b[i], b[i + 1], b[i + 2]]
    });
    // Class 1's row holds 4 tiles, class 0's one: where a tile is, the
    // pixels are not white; the tile's low bands (bottom) are dark.
    let white = [255, 255, 255];
    let row_y = |class: usize| 34 + 6 + class * 78 + 36;
    let right_tile_x = w - 6 - 96;
    assert_ne!(px(right_tile_x, row_y(1), &buf), white);
    assert_eq!(px(right_tile_x, row_y(0), &buf), white);
    let bottom = px(right_tile_x, row_y(1) + 35, &buf);
    let top = px(right_tile_x, row_y(1) - 36, &buf);
    assert!(
        bottom.iter().map(|&v| v as u32).sum::<u32>() < top.iter().map(|&v| v as u32).sum::<u32>()
    );
}
