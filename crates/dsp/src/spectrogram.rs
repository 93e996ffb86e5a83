//! [`Spectrogram`]: a row-major `[rows, frames]` matrix, the output of every transform here.

/// A 2-D time-frequency array stored row-major as `[rows, frames]`: one row per
/// frequency bin, mel band or coefficient, one column per frame, the layout of
/// `torchaudio` outputs and `librosa` arrays.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrogram<T = f32> {
    data: Vec<T>,
    rows: usize,
    frames: usize,
}

impl<T> Spectrogram<T> {
    /// Wraps `data` of `rows * frames` values.
    ///
    /// # Panics
    /// If `data.len() != rows * frames`.
    pub fn from_vec(data: Vec<T>, rows: usize, frames: usize) -> Self {
        if data.len() != rows * frames {
            crate::error::buffer_len_mismatch("spectrogram data", rows * frames, data.len());
        }
        Self { data, rows, frames }
    }

    /// Number of rows (frequency bins, mel bands or coefficients).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of frames (columns).
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// `(rows, frames)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.frames)
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// All values, row-major, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// One row: a band's values over time.
    pub fn row(&self, row: usize) -> &[T] {
        &self.data[row * self.frames..(row + 1) * self.frames]
    }

    /// The value at `(row, frame)`.
    pub fn get(&self, row: usize, frame: usize) -> &T {
        &self.data[row * self.frames + frame]
    }

    /// Gives back the row-major values.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }
}
