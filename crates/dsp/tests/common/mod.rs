//! Helpers shared by the integration tests: reading `.npy` golden arrays.

use std::path::{Path, PathBuf};

/// A float32 array read from a `.npy` file, always returned in C (row-major) order.
pub struct Npy {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Path of a file in `tests/data`.
pub fn data_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Reads a `.npy` from `tests/data`; see [`read_npy_path`].
pub fn read_npy(name: &str) -> Npy {
    read_npy_path(&data_path(name))
}

/// Reads a little-endian float32 `.npy` (format 1.0 or 2.0), transposing
/// Fortran-ordered 2-D arrays into row-major order.
pub fn read_npy_path(path: &Path) -> Npy {
    let name = path.display();
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{name}: not an npy file");
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(
        header.contains("'descr': '<f4'"),
        "{name}: only <f4 is supported: {header}"
    );
    let fortran = header.contains("'fortran_order': True");
    let dims = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = dims
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let raw: Vec<f32> = bytes[start + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(raw.len(), shape.iter().product::<usize>(), "{name}: size");
    let data = if fortran && shape.len() == 2 {
        let (rows, cols) = (shape[0], shape[1]);
        (0..rows * cols)
            .map(|i| raw[(i % cols) * rows + i / cols])
            .collect()
    } else {
        assert!(
            !fortran || shape.len() < 2,
            "{name}: fortran order beyond 2-D"
        );
        raw
    };
    Npy { shape, data }
}
