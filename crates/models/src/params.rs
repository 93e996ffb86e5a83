//! A model's parameters and buffers in a candle-nn [`VarMap`], under
//! PyTorch's state_dict names, with hark's seeded initialisation, and
//! safetensors checkpoints.
//!
//! Layers take their tensors from a candle-nn [`VarBuilder`] with PyTorch's
//! paths (`vb.pp("conv1").get_with_hints(.., "weight", init)` is
//! `conv1.weight`). A [`ParamStore`] is the backend of such a builder: each
//! new name gets a [`Var`] drawn from the store's seeded ChaCha8 stream in
//! the order the layers ask (candle's CPU RNG cannot be seeded), kept in its
//! `VarMap`. The same builder over
//! `VarBuilder::from_mmaped_safetensors` instead reads a hark checkpoint
//! or a PyTorch state_dict.
//!
//! Trainable parameters are what an optimizer updates; buffers (BatchNorm
//! running statistics and `num_batches_tracked`, known by those names) are
//! saved and loaded but never trained.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Error, Result};

/// The last path segments of PyTorch's BatchNorm buffers.
const BUFFERS: [&str; 3] = ["running_mean", "running_var", "num_batches_tracked"];

#[derive(Debug)]
struct Inner {
    /// Every name in the order the layers asked for it, and whether it is
    /// trainable.
    order: Vec<(String, bool)>,
    rng: ChaCha8Rng,
}

/// Every parameter and buffer of one model, by PyTorch name: a candle-nn
/// [`VarMap`] that remembers the order the layers registered them in, and
/// the seeded stream their initial values come from. Cloning shares the
/// store.
#[derive(Clone)]
pub struct ParamStore {
    varmap: VarMap,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for ParamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamStore")
            .field("order", &self.lock().order)
            .finish_non_exhaustive()
    }
}

impl ParamStore {
    /// An empty store whose initial values come from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            varmap: VarMap::new(),
            inner: Arc::new(Mutex::new(Inner {
                order: Vec::new(),
                rng: ChaCha8Rng::seed_from_u64(seed),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the order half written
        // (every push is one call), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A candle-nn builder (f32, CPU) whose new tensors are drawn into this
    /// store.
    pub fn var_builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, Device::Cpu)
    }

    /// The candle-nn map holding every variable, by name.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The variables of `names`, in order.
    fn vars<'a>(&self, names: impl Iterator<Item = &'a String>) -> Vec<(String, Var)> {
        let data = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        names
            .filter_map(|n| data.get(n).map(|v| (n.clone(), v.clone())))
            .collect()
    }

    /// The trainable parameters, by name, in registration order.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        let inner = self.lock();
        self.vars(inner.order.iter().filter(|(_, t)| *t).map(|(n, _)| n))
    }

    /// Every tensor of the state_dict (parameters and buffers), by name, in
    /// registration order.
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        let inner = self.lock();
        self.vars(inner.order.iter().map(|(n, _)| n))
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect()
    }

    /// The number of trainable scalars whose name starts with `prefix`
    /// (all of them for `""`).
    pub fn num_trainable(&self, prefix: &str) -> usize {
        self.trainable()
            .iter()
            .filter(|(n, _)| under(n, prefix))
            .map(|(_, v)| v.elem_count())
            .sum()
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
    /// [`Error::MissingTensor`], [`Error::UnexpectedTensor`],
    /// [`Error::TensorMismatch`] or [`Error::NonFiniteTensor`], naming the
    /// first tensor at fault; `path` names the file in the message.
    pub fn load_tensors(&self, mut tensors: HashMap<String, Tensor>, path: &Path) -> Result<()> {
        let inner = self.lock();
        let vars = self.vars(inner.order.iter().map(|(n, _)| n));
        let mut updates = Vec::with_capacity(vars.len());
        for (name, var) in vars {
            let Some(t) = tensors.remove(&name) else {
                if name.ends_with("num_batches_tracked") {
                    continue;
                }
                return Err(Error::MissingTensor {
                    path: path.to_path_buf(),
                    name,
                });
            };
            let want = var.as_tensor();
            if t.dims() != want.dims() || t.dtype() != want.dtype() {
                return Err(Error::TensorMismatch {
                    path: path.to_path_buf(),
                    expected: format!("{:?} {:?}", want.dims(), want.dtype()),
                    got: format!("{:?} {:?}", t.dims(), t.dtype()),
                    name,
                });
            }
            if t.dtype().is_float() {
                let values = t
                    .flatten_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_vec1::<f64>()?;
                let count = values.iter().filter(|v| !v.is_finite()).count();
                if count > 0 {
                    return Err(Error::NonFiniteTensor {
                        path: path.to_path_buf(),
                        name,
                        count,
                    });
                }
            }
            updates.push((var, t));
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
        .map_err(|e| e.to_string())
        .and_then(sorted_metadata)
        .map_err(|e| io(std::io::Error::other(e)))?;
    let tmp = temp_path(path);
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// safetensors writes `__metadata__` from a `HashMap`, whose order changes
/// from one process to the next; the same weights must give the same bytes,
/// so the header is written again with its metadata keys sorted.
fn sorted_metadata(bytes: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    let len = bytes
        .first_chunk::<8>()
        .map(|b| u64::from_le_bytes(*b) as usize)
        .filter(|&n| n <= bytes.len() - 8)
        .ok_or("safetensors wrote no header")?;
    let (header, data) = bytes[8..].split_at(len);
    let mut header: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| e.to_string())?;
    if let Some(meta) = header
        .get_mut("__metadata__")
        .and_then(serde_json::Value::as_object_mut)
    {
        let sorted: std::collections::BTreeMap<_, _> = std::mem::take(meta).into_iter().collect();
        meta.extend(sorted);
    }
    let mut text = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    // The data stays 8-byte aligned, as safetensors pads it.
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + data.len());
    out.extend((text.len() as u64).to_le_bytes());
    out.extend(text);
    out.extend(data);
    Ok(out)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

impl SimpleBackend for ParamStore {
    /// The variable `name`, drawn from `init` the first time it is asked
    /// for. Asking twice is an error: two layers under one name would
    /// silently share their weights.
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut inner = self.lock();
        let mut data = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        if data.contains_key(name) {
            candle_core::bail!("parameter `{name}` is registered twice");
        }
        let values = sample(init, &shape, &mut inner.rng)?;
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)?)?;
        let tensor = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        let buffer = BUFFERS.iter().any(|b| name.rsplit('.').next() == Some(*b));
        inner.order.push((name.to_string(), !buffer));
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("`{name}`: a ParamStore creates tensors, it needs their shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        let data = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        data.contains_key(name)
    }
}

/// Values of `shape` drawn from `init` (f64 arithmetic, then f32). The
/// symmetric uniform and zero-mean normal draws are bit-identical to
/// [`Init`](crate::Init)'s schemes.
pub(crate) fn sample<R: Rng + ?Sized>(
    init: candle_nn::Init,
    shape: &Shape,
    rng: &mut R,
) -> candle_core::Result<Vec<f32>> {
    use candle_nn::init::NormalOrUniform;
    let n = shape.elem_count();
    let uniform = |rng: &mut R, lo: f64, up: f64| -> Vec<f32> {
        let (mid, half) = ((up + lo) / 2.0, (up - lo) / 2.0);
        (0..n)
            .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * half + mid) as f32)
            .collect()
    };
    let normal = |rng: &mut R, mean: f64, std: f64| -> Vec<f32> {
        (0..n)
            .map(|_| (standard_normal(rng) * std + mean) as f32)
            .collect()
    };
    Ok(match init {
        candle_nn::Init::Const(v) => vec![v as f32; n],
        candle_nn::Init::Uniform { lo, up } => uniform(rng, lo, up),
        candle_nn::Init::Randn { mean, stdev } => normal(rng, mean, stdev),
        candle_nn::Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape).max(1) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(rng, -bound, bound)
                }
                NormalOrUniform::Normal => normal(rng, 0.0, std),
            }
        }
    })
}

/// One standard normal draw (Box-Muller).
fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(seed: u64) -> ParamStore {
        let store = ParamStore::new(seed);
        let vb = store.var_builder();
        let init = crate::Init::fan_in_uniform(3).into();
        vb.pp("lin").get_with_hints((2, 3), "weight", init).unwrap();
        vb.pp("lin").get_with_hints(2, "bias", init).unwrap();
        let bn = vb.pp("bn");
        bn.get_with_hints(2, "running_var", candle_nn::Init::Const(1.0))
            .unwrap();
        bn.get_with_hints_dtype(
            (),
            "num_batches_tracked",
            candle_nn::Init::Const(0.0),
            DType::I64,
        )
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
    fn a_name_asked_for_twice_is_an_error() {
        let store = tiny(0);
        let err = store
            .var_builder()
            .pp("lin")
            .get_with_hints(2, "bias", candle_nn::Init::Const(0.0))
            .unwrap_err();
        assert!(
            err.to_string().contains("`lin.bias` is registered twice"),
            "{err}"
        );
    }

    #[test]
    fn candles_schemes_draw_from_the_seeded_stream() {
        let shape = Shape::from((64, 16));
        let kaiming = candle_nn::init::DEFAULT_KAIMING_UNIFORM;
        let a = sample(kaiming, &shape, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let b = sample(kaiming, &shape, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        assert_eq!(a, b);
        // Kaiming uniform for a linear: gain sqrt(2) over fan-in 16.
        let bound = (3.0f64 * 2.0 / 16.0).sqrt() as f32;
        assert!(a.iter().all(|v| v.abs() <= bound) && a.iter().any(|v| v.abs() > 0.9 * bound));
        let normal = candle_nn::Init::Randn {
            mean: 5.0,
            stdev: 0.0,
        };
        let c = sample(normal, &shape, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        assert!(c.iter().all(|&v| v == 5.0));
    }

    #[test]
    fn the_same_tensors_and_metadata_give_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let tensors = tiny(1).state_dict();
        let save = |name: &str| {
            // A fresh map each time: its iteration order is drawn anew.
            let meta: HashMap<String, String> =
                (0..12).map(|i| (format!("k{i}"), i.to_string())).collect();
            let path = dir.path().join(name);
            save_tensors(&tensors, &meta, &path).unwrap();
            (std::fs::read(&path).unwrap(), read_metadata(&path).unwrap())
        };
        let (a, meta) = save("a.safetensors");
        for i in 0..4 {
            assert_eq!(save(&format!("{i}.safetensors")).0, a);
        }
        assert_eq!(
            (meta.len(), meta["k7"].as_str(), meta["format"].as_str()),
            (13, "7", "pt")
        );
        let header = u64::from_le_bytes(a[..8].try_into().unwrap()) as usize;
        assert_eq!((8 + header) % 8, 0, "the data stays aligned");
        let store = tiny(2);
        store.load(&dir.path().join("a.safetensors")).unwrap();
        assert_eq!(values(&store), values(&tiny(1)));
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
