//! Named parameters and buffers with PyTorch state_dict names, seeded
//! initialisation, and safetensors checkpoints.
//!
//! A [`ParamStore`] owns every tensor of a model under its PyTorch name
//! (`conv1.weight`, `bn1.running_mean`, `lstm.weight_ih_l0`, ...). Layers
//! register their tensors through a [`ParamBuilder`], which draws initial
//! values from the store's seeded RNG in registration order. Trainable
//! parameters are what an optimizer updates; buffers (BatchNorm running
//! statistics and `num_batches_tracked`) are saved and loaded but never
//! trained.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{DType, Device, Tensor, Var};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Error, Init, Result};

/// One registered tensor.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    var: Var,
    trainable: bool,
}

#[derive(Debug)]
struct Inner {
    entries: Vec<Entry>,
    rng: ChaCha8Rng,
}

/// Every parameter and buffer of one model, by PyTorch name, in the order the
/// layers registered them. Cloning shares the store.
#[derive(Debug, Clone)]
pub struct ParamStore {
    inner: Arc<Mutex<Inner>>,
    dropout_step: Arc<AtomicU64>,
}

impl ParamStore {
    /// An empty store whose initial values come from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                entries: Vec::new(),
                rng: ChaCha8Rng::seed_from_u64(seed),
            })),
            dropout_step: Arc::new(AtomicU64::new(0)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the entry list half
        // written (every push is one call), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The builder at the root of the name tree.
    pub fn root(&self) -> ParamBuilder {
        ParamBuilder {
            store: self.clone(),
            prefix: String::new(),
        }
    }

    /// The trainable parameters, by name, in registration order.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.lock()
            .entries
            .iter()
            .filter(|e| e.trainable)
            .map(|e| (e.name.clone(), e.var.clone()))
            .collect()
    }

    /// Every tensor of the state_dict (parameters and buffers), by name, in
    /// registration order.
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        self.lock()
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.var.as_tensor().clone()))
            .collect()
    }

    /// The number of trainable scalars whose name starts with `prefix`
    /// (all of them for `""`).
    pub fn num_trainable(&self, prefix: &str) -> usize {
        self.lock()
            .entries
            .iter()
            .filter(|e| e.trainable && under(&e.name, prefix))
            .map(|e| e.var.elem_count())
            .sum()
    }

    /// How many dropout masks have been drawn; with the seed it fixes every
    /// later mask, so a resumed run restores it with [`set_dropout_step`](Self::set_dropout_step).
    pub fn dropout_step(&self) -> u64 {
        self.dropout_step.load(Ordering::Relaxed)
    }

    /// Restores the count returned by [`dropout_step`](Self::dropout_step).
    pub fn set_dropout_step(&self, step: u64) {
        self.dropout_step.store(step, Ordering::Relaxed);
    }

    /// Writes the state_dict to `path` as safetensors (metadata
    /// `format = pt`), through a temporary file renamed into place.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_tensors(&self.state_dict(), &HashMap::new(), path)
    }

    /// Loads a safetensors state_dict saved by hark or by PyTorch.
    ///
    /// # Errors
    /// As [`load_tensors`](Self::load_tensors), plus [`Error::Io`] and
    /// [`Error::Format`] for an unreadable file.
    pub fn load(&self, path: &Path) -> Result<()> {
        let tensors = read_tensors(path)?;
        self.load_tensors(tensors, path)
    }

    /// Sets every tensor from `tensors`, checking names, shapes and dtypes
    /// first so a bad file changes nothing. `num_batches_tracked` may be
    /// absent (PyTorch loads such files too); it then keeps its value.
    ///
    /// # Errors
    /// [`Error::MissingTensor`], [`Error::UnexpectedTensor`] or
    /// [`Error::TensorMismatch`], naming the first tensor at fault; `path`
    /// names the file in the message.
    pub fn load_tensors(&self, mut tensors: HashMap<String, Tensor>, path: &Path) -> Result<()> {
        let inner = self.lock();
        let mut updates = Vec::with_capacity(inner.entries.len());
        for e in &inner.entries {
            let Some(t) = tensors.remove(&e.name) else {
                if e.name.ends_with("num_batches_tracked") {
                    continue;
                }
                return Err(Error::MissingTensor {
                    path: path.to_path_buf(),
                    name: e.name.clone(),
                });
            };
            let want = e.var.as_tensor();
            if t.dims() != want.dims() || t.dtype() != want.dtype() {
                return Err(Error::TensorMismatch {
                    path: path.to_path_buf(),
                    name: e.name.clone(),
                    expected: format!("{:?} {:?}", want.dims(), want.dtype()),
                    got: format!("{:?} {:?}", t.dims(), t.dtype()),
                });
            }
            updates.push((e.var.clone(), t));
        }
        let mut extra: Vec<String> = tensors.into_keys().collect();
        extra.sort();
        if let Some(name) = extra.into_iter().next() {
            return Err(Error::UnexpectedTensor {
                path: path.to_path_buf(),
                name,
            });
        }
        for (var, t) in updates {
            var.set(&t.contiguous()?.copy()?)?;
        }
        Ok(())
    }
}

/// `name` is `prefix` itself or lies under `prefix.`.
fn under(name: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Reads every tensor of a safetensors file onto the CPU.
///
/// # Errors
/// [`Error::Io`] or [`Error::Format`], naming the file.
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// The string metadata of a safetensors file.
///
/// # Errors
/// [`Error::Io`] or [`Error::Format`], naming the file.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
    Ok(header.metadata().clone().unwrap_or_default())
}

/// Writes named tensors as safetensors with PyTorch's `format = pt` and
/// `metadata`, atomically: a temporary file beside `path` is renamed over it.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn save_tensors(
    tensors: &[(String, Tensor)],
    metadata: &HashMap<String, String>,
    path: &Path,
) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let contiguous = tensors
        .iter()
        .map(|(n, t)| Ok((n.as_str(), t.contiguous()?)))
        .collect::<Result<Vec<_>>>()?;
    let mut metadata = metadata.clone();
    metadata.insert("format".to_string(), "pt".to_string());
    let bytes = safetensors::serialize(contiguous, Some(metadata))
        .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let tmp = temp_path(path);
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

/// Registers a model's tensors under a dotted name prefix, as candle-nn's
/// `VarBuilder` does: `pb.pp("conv1").param(..., "weight", ...)` creates
/// `conv1.weight`.
#[derive(Debug, Clone)]
pub struct ParamBuilder {
    store: ParamStore,
    prefix: String,
}

impl ParamBuilder {
    /// The builder one level down, for a sub-module named `name`.
    pub fn pp(&self, name: impl AsRef<str>) -> Self {
        Self {
            store: self.store.clone(),
            prefix: self.path(name.as_ref()),
        }
    }

    /// The full name of `name` under this builder.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The store this builder registers into.
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    fn register(&self, name: &str, var: Var, trainable: bool) -> Result<Var> {
        let full = self.path(name);
        let mut inner = self.store.lock();
        if inner.entries.iter().any(|e| e.name == full) {
            return Err(crate::Error::Layer(format!(
                "parameter `{full}` is registered twice"
            )));
        }
        inner.entries.push(Entry {
            name: full,
            var: var.clone(),
            trainable,
        });
        Ok(var)
    }

    fn draw(&self, shape: &[usize], init: Init) -> Result<Tensor> {
        let n = shape.iter().product();
        let values = init.sample(n, &mut self.store.lock().rng);
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
    }

    /// A trainable f32 parameter drawn from `init`.
    ///
    /// # Errors
    /// When `name` is already registered.
    pub fn param(&self, shape: &[usize], name: &str, init: Init) -> Result<Tensor> {
        let var = Var::from_tensor(&self.draw(shape, init)?)?;
        Ok(self.register(name, var, true)?.as_tensor().clone())
    }

    /// A non-trainable f32 buffer (saved and loaded, never optimised).
    ///
    /// # Errors
    /// When `name` is already registered.
    pub fn buffer(&self, shape: &[usize], name: &str, value: f64) -> Result<Var> {
        let var = Var::from_tensor(&self.draw(shape, Init::Const(value))?)?;
        self.register(name, var, false)
    }

    /// A non-trainable scalar i64 counter starting at 0 (BatchNorm's
    /// `num_batches_tracked`).
    ///
    /// # Errors
    /// When `name` is already registered.
    pub fn counter(&self, name: &str) -> Result<Var> {
        let var = Var::zeros((), DType::I64, &Device::Cpu)?;
        self.register(name, var, false)
    }

    /// A seed for a dropout layer, drawn from the store's RNG, and the
    /// store's shared count of masks drawn.
    pub fn dropout_rng(&self) -> (u64, Arc<AtomicU64>) {
        let seed = self.store.lock().rng.random();
        (seed, self.store.dropout_step.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(seed: u64) -> ParamStore {
        let store = ParamStore::new(seed);
        let pb = store.root().pp("lin");
        pb.param(&[2, 3], "weight", Init::fan_in_uniform(3))
            .unwrap();
        pb.param(&[2], "bias", Init::fan_in_uniform(3)).unwrap();
        store
            .root()
            .pp("bn")
            .buffer(&[2], "running_var", 1.0)
            .unwrap();
        store
            .root()
            .pp("bn")
            .counter("num_batches_tracked")
            .unwrap();
        store
    }

    fn values(store: &ParamStore) -> Vec<Vec<f32>> {
        store
            .trainable()
            .iter()
            .map(|(_, v)| v.flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    }

    #[test]
    fn same_seed_gives_the_same_weights_and_another_seed_others() {
        assert_eq!(values(&tiny(7)), values(&tiny(7)));
        assert_ne!(values(&tiny(7)), values(&tiny(8)));
        assert_eq!(tiny(7).num_trainable(""), 8);
        assert_eq!(tiny(7).num_trainable("lin"), 8);
        assert_eq!(tiny(7).num_trainable("li"), 0);
        let names: Vec<_> = tiny(1).state_dict().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "lin.weight",
                "lin.bias",
                "bn.running_var",
                "bn.num_batches_tracked"
            ]
        );
    }

    #[test]
    fn save_then_load_round_trips_and_bad_files_name_the_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let a = tiny(1);
        a.save(&path).unwrap();
        let b = tiny(2);
        b.load(&path).unwrap();
        assert_eq!(values(&a), values(&b));

        let mut t = read_tensors(&path).unwrap();
        t.remove("lin.bias");
        let err = b.load_tensors(t.clone(), &path).unwrap_err().to_string();
        assert!(err.contains("missing tensor `lin.bias`"), "{err}");
        t.insert(
            "lin.bias".into(),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        );
        let err = b.load_tensors(t.clone(), &path).unwrap_err().to_string();
        assert!(
            err.contains("`lin.bias` should be [2] F32, got [3] F32"),
            "{err}"
        );
        t.insert(
            "lin.bias".into(),
            Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
        );
        t.insert(
            "lin.extra".into(),
            Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
        );
        let err = b.load_tensors(t.clone(), &path).unwrap_err().to_string();
        assert!(err.contains("unexpected tensor `lin.extra`"), "{err}");
        // A failed load changed nothing.
        assert_eq!(values(&a), values(&b));
        t.remove("lin.extra");
        t.remove("bn.num_batches_tracked");
        b.load_tensors(t, &path).unwrap();

        std::fs::write(&path, b"not safetensors").unwrap();
        let err = b.load(&path).unwrap_err().to_string();
        assert!(err.contains("not a valid safetensors file"), "{err}");
    }
}
