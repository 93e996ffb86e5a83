//! The run directory's pictures: `confusion.png` (counts in the cells,
//! colour by the row-normalised share, class names on both axes) and
//! `curves.png` (loss and accuracy per epoch, training and validation).
//!
//! Text is drawn with a subset of DejaVu Sans compiled into the crate, so
//! no system font is needed.

use std::path::Path;
use std::sync::Once;

use hark_data::write_atomic;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

use crate::metrics::shown_name;
use crate::{EpochMetrics, Error, Result};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";
/// The dark end of the colour scale (matplotlib's `Blues`).
const DARK: (u8, u8, u8) = (8, 48, 107);

fn plot_err(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |msg| Error::Plot {
        path: path.to_path_buf(),
        msg,
    }
}

/// Draws `draw` on a `width` x `height` white RGB canvas and writes it to
/// `path` as a PNG, atomically.
fn render(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
) -> Result<()> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The font is a constant of this crate; a failure is a build bug.
        register_font(FAMILY, FontStyle::Normal, FONT).unwrap_or_else(|_| {
            unreachable!("the bundled font parses");
        });
    });
    let err = plot_err(path);
    let mut pixels = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png_bytes, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| err(e.to_string()))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| err(e.to_string()))?;
    }
    write_atomic(path, &png_bytes).map_err(|e| err(e.to_string()))
}

fn blend(share: f64) -> RGBColor {
    let mix = |dark: u8| (255.0 - (255.0 - dark as f64) * share.clamp(0.0, 1.0)).round() as u8;
    RGBColor(mix(DARK.0), mix(DARK.1), mix(DARK.2))
}

/// Writes the confusion matrix `counts` (row = true class) as a heat map:
/// each cell holds its count and is coloured by its share of the row.
///
/// Labels and counts are left out when the cells get too small to hold
/// them (hundreds of classes).
///
/// # Errors
/// [`Error::Plot`] when drawing or writing fails, [`Error::Metrics`] for a
/// matrix that is not `classes.len()` square.
pub fn confusion_png(
    path: &Path,
    counts: &[Vec<u64>],
    classes: &[String],
    title: &str,
) -> Result<()> {
    let n = classes.len();
    if counts.len() != n || counts.iter().any(|r| r.len() != n) {
        return Err(Error::Metrics(format!(
            "a confusion matrix of {} rows for {n} classes",
            counts.len()
        )));
    }
    let cell = (720 / n.max(1)).clamp(3, 64) as i32;
    let labels = cell >= 10;
    let label_size = (cell as f64 * 0.6).clamp(9.0, 14.0);
    let label_px = if labels {
        let longest = (classes.iter())
            .map(|c| shown_name(c).chars().count())
            .max()
            .unwrap_or(0);
        (longest as f64 * label_size * 0.56) as i32 + 8
    } else {
        0
    };
    let (left, top, bottom, right) = (label_px + 28, 40, label_px + 28, 20);
    let side = cell * n as i32;
    let size = ((left + side + right) as u32, (top + side + bottom) as u32);
    render(path, size, |root| {
        let err = plot_err(path);
        let text = |s: f64| TextStyle::from((FAMILY, s).into_font()).color(&BLACK);
        let centred = |s: f64| text(s).pos(Pos::new(HPos::Center, VPos::Center));
        let draw =
            |e: std::result::Result<(), DrawingAreaErrorKind<_>>| e.map_err(|e| err(e.to_string()));
        draw(root.draw_text(title, &text(16.0), (left, 12)))?;
        let count_size = (cell as f64 * 0.32).clamp(7.0, 14.0);
        for (t, row) in counts.iter().enumerate() {
            let total = row.iter().sum::<u64>().max(1) as f64;
            for (p, &c) in row.iter().enumerate() {
                let share = c as f64 / total;
                let (x, y) = (left + p as i32 * cell, top + t as i32 * cell);
                draw(root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    blend(share).filled(),
                )))?;
                if cell >= 18 {
                    let colour = if share > 0.5 { WHITE } else { BLACK };
                    let style = centred(count_size).color(&colour);
                    draw(root.draw_text(&c.to_string(), &style, (x + cell / 2, y + cell / 2)))?;
                }
            }
        }
        draw(root.draw(&Rectangle::new(
            [(left, top), (left + side, top + side)],
            BLACK.stroke_width(1),
        )))?;
        if labels {
            for (i, name) in classes.iter().enumerate() {
                let name = shown_name(name);
                let name = name.as_ref();
                let mid = i as i32 * cell + cell / 2;
                let right_aligned = text(label_size).pos(Pos::new(HPos::Right, VPos::Center));
                draw(root.draw_text(name, &right_aligned, (left - 6, top + mid)))?;
                let down = right_aligned.transform(FontTransform::Rotate270);
                draw(root.draw_text(name, &down, (left + mid, top + side + 6)))?;
            }
        }
        let axis = text(13.0);
        draw(root.draw_text(
            "predicted",
            &axis.pos(Pos::new(HPos::Center, VPos::Bottom)),
            (left + side / 2, size.1 as i32 - 4),
        ))?;
        draw(
            root.draw_text(
                "true",
                &axis
                    .transform(FontTransform::Rotate270)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
                (4, top + side / 2),
            ),
        )?;
        Ok(())
    })
}

/// Writes the training curves: loss (left) and accuracy (right) per epoch,
/// training in blue, validation in orange.
///
/// # Errors
/// [`Error::Plot`] when drawing or writing fails.
pub fn curves_png(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    let orange = RGBColor(230, 110, 20);
    let blue = RGBColor(DARK.0, 90, 180);
    render(path, (960, 400), |root| {
        let err = plot_err(path);
        let panels = root.split_evenly((1, 2));
        let last = history.last().map_or(1, |m| m.epoch).max(2) as f64;
        type Pick = fn(&EpochMetrics) -> Option<f64>;
        let plots: [(&str, Pick, Pick, SeriesLabelPosition); 2] = [
            (
                "loss",
                |m| Some(m.train_loss),
                |m| m.val_loss,
                SeriesLabelPosition::UpperRight,
            ),
            (
                "accuracy",
                |m| Some(m.train_accuracy),
                |m| m.val_accuracy,
                SeriesLabelPosition::LowerRight,
            ),
        ];
        for (area, (name, train, val, legend)) in panels.iter().zip(plots) {
            let values = history.iter().flat_map(|m| [train(m), val(m)]).flatten();
            let top = values.filter(|v| v.is_finite()).fold(0.0f64, f64::max);
            let top = if name == "accuracy" {
                1.0
            } else {
                (top * 1.05).max(1e-3)
            };
            let mut chart = ChartBuilder::on(area)
                .caption(name, (FAMILY, 16))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(1.0..last, 0.0..top)
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .label_style((FAMILY, 12))
                .axis_desc_style((FAMILY, 13))
                .x_label_formatter(&|x| format!("{x:.0}"))
                .draw()
                .map_err(|e| err(e.to_string()))?;
            for (label, pick, colour) in [("train", train, blue), ("validation", val, orange)] {
                let points: Vec<(f64, f64)> = history
                    .iter()
                    .filter_map(|m| pick(m).map(|v| (m.epoch as f64, v)))
                    .collect();
                if points.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                    .map_err(|e| err(e.to_string()))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(legend)
                .label_font((FAMILY, 12))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    })
}

/// Writes a horizontal bar chart of `bars` (a label and a count each, drawn
/// top to bottom in the given order) under `title`: a dataset's class
/// balance or its sample rates (`hark inspect dataset --plot`).
///
/// # Errors
/// [`Error::Plot`] when drawing or writing fails.
pub fn bars_png(path: &Path, title: &str, bars: &[(String, u64)]) -> Result<()> {
    let n = bars.len().max(1);
    let height = (90 + 22 * n).min(4000) as u32;
    let widest = bars
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(1);
    let label_width = (7 * widest.min(60) + 16) as u32;
    render(path, (720 + label_width, height), |root| {
        let err = plot_err(path);
        let top = bars.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64 * 1.1;
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FAMILY, 16))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(label_width)
            .build_cartesian_2d(0.0..top, (0..n).into_segmented())
            .map_err(|e| err(e.to_string()))?;
        let label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => ((n - 1).checked_sub(*i))
                .and_then(|k| bars.get(k))
                .map_or(String::new(), |b| b.0.clone()),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&label)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style((FAMILY, 12))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        let blue = RGBColor(DARK.0, 90, 180);
        chart
            .draw_series(
                Histogram::horizontal(&chart)
                    .style(blue.filled())
                    .margin(3)
                    .data(
                        bars.iter()
                            .enumerate()
                            .map(|(i, b)| (n - 1 - i, b.1 as f64)),
                    ),
            )
            .map_err(|e| err(e.to_string()))?;
        Ok(())
    })
}

/// One example as [`specs_png`] draws it: its class and its first
/// channel, `rows` x `frames` row-major, row 0 the lowest band.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecTile {
    /// The class.
    pub label: usize,
    /// The values.
    pub values: Vec<f32>,
    /// Rows (bands).
    pub rows: usize,
    /// Frames.
    pub frames: usize,
}

/// Most classes and examples per class [`specs_png`] draws.
pub const SPECS_GRID: (usize, usize) = (32, 4);

/// Writes a grid of input spectrograms, a row per class (the first
/// [`SPECS_GRID`] of each), each tile coloured from its own minimum (dark)
/// to its maximum (bright), low bands at the bottom: what the model is fed.
///
/// # Errors
/// [`Error::Plot`] when drawing or writing fails.
pub fn specs_png(path: &Path, title: &str, classes: &[String], tiles: &[SpecTile]) -> Result<()> {
    let (tile_w, tile_h, gap) = (192i32, 72i32, 6i32);
    let rows = classes.len().min(SPECS_GRID.0);
    let name = |c: &String| c.chars().take(24).collect::<String>();
    let left = 8 + classes
        .iter()
        .take(rows)
        .map(|c| name(c).chars().count())
        .max()
        .unwrap_or(0) as i32
        * 7;
    let top = 34;
    let width = left + SPECS_GRID.1 as i32 * (tile_w + gap) + gap;
    let height = top + rows.max(1) as i32 * (tile_h + gap) + gap;
    render(path, (width as u32, height as u32), |root| {
        let err = plot_err(path);
        let draw =
            |e: std::result::Result<(), DrawingAreaErrorKind<_>>| e.map_err(|e| err(e.to_string()));
        let text = |s: f64| TextStyle::from((FAMILY, s).into_font()).color(&BLACK);
        draw(root.draw_text(title, &text(14.0), (8, 10)))?;
        let mut used = vec![0usize; classes.len()];
        for tile in tiles {
            let Some(n) = used.get_mut(tile.label).filter(|_| tile.label < rows) else {
                continue;
            };
            if *n == SPECS_GRID.1 || tile.rows * tile.frames == 0 {
                continue;
            }
            let (x0, y0) = (
                left + gap + *n as i32 * (tile_w + gap),
                top + gap + tile.label as i32 * (tile_h + gap),
            );
            *n += 1;
            let v = &tile.values[..tile.rows * tile.frames];
            let (lo, hi) = v
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            let span = (hi - lo).max(1e-12);
            for py in 0..tile_h {
                let row = tile.rows - 1 - (py as usize * tile.rows / tile_h as usize);
                for px in 0..tile_w {
                    let frame = px as usize * tile.frames / tile_w as usize;
                    let share = ((v[row * tile.frames + frame] - lo) / span) as f64;
                    draw(root.draw_pixel((x0 + px, y0 + py), &heat(share)))?;
                }
            }
        }
        for (i, class) in classes.iter().take(rows).enumerate() {
            let mid = top + gap + i as i32 * (tile_h + gap) + tile_h / 2;
            let style = text(12.0).pos(Pos::new(HPos::Right, VPos::Center));
            draw(root.draw_text(&name(class), &style, (left - 2, mid)))?;
        }
        Ok(())
    })
}

/// A dark-blue to yellow scale for spectrograms (after matplotlib's viridis).
fn heat(share: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 4] = [
        (68.0, 1.0, 84.0),
        (49.0, 104.0, 142.0),
        (53.0, 183.0, 121.0),
        (253.0, 231.0, 37.0),
    ];
    let x = share.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let t = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * t).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}
