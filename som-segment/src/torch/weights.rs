//! Checkpoint loading: official `.pth` state dicts (PyTorch zip + pickle) and safetensors.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use tch::{Kind, Tensor};

use super::pickle::{unpickle, TensorRef, Value};
use super::CheckpointError;

/// A loaded state dict: parameter name to tensor, all `f32` on the CPU.
///
/// Read with [`Weights::from_file`], which recognises the format by its first bytes.
#[derive(Debug)]
pub struct Weights {
    tensors: BTreeMap<String, Tensor>,
    used: RefCell<BTreeSet<String>>,
}

fn bad(path: &Path, reason: impl Into<String>) -> CheckpointError {
    CheckpointError::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl Weights {
    /// Reads a checkpoint: a `torch.save(model.state_dict())` archive (the official
    /// `sam_vit_*.pth` files), a detectron2 checkpoint (`{"model": state_dict, ...}`, the
    /// released MaskDINO files) or a safetensors file.
    ///
    /// # Errors
    /// [`CheckpointError::Io`] when the file cannot be read, [`CheckpointError::Format`] when it is
    /// neither format, is truncated, or holds something other than a state dict.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        Self::read(path.as_ref())
    }

    /// [`Weights::from_file`], then the tensors moved to `device` (a resolved device, see
    /// [`crate::Device::resolve`]) unless it is the CPU they are read onto.
    ///
    /// ```no_run
    /// use som_segment::{torch::Weights, Device};
    /// let device = Device::Auto.resolve()?;
    /// let weights = Weights::from_file_on("sam_vit_b_01ec64.pth", device)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Weights::from_file`] and [`Weights::to_device`].
    pub fn from_file_on(path: impl AsRef<Path>, device: tch::Device) -> Result<Self, CheckpointError> {
        let weights = Self::read(path.as_ref())?;
        if device == tch::Device::Cpu {
            Ok(weights)
        } else {
            weights.to_device(device)
        }
    }

    fn read(path: &Path) -> Result<Self, CheckpointError> {
        let mut head = [0u8; 9];
        let n = {
            let mut f = std::fs::File::open(path).map_err(|source| CheckpointError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            read_up_to(&mut f, &mut head).map_err(|source| CheckpointError::Io {
                path: path.to_path_buf(),
                source,
            })?
        };
        if n >= 4 && head[..4] == *b"PK\x03\x04" {
            Self::from_pth(path)
        } else if n == 9 && head[8] == b'{' {
            Self::from_safetensors(path)
        } else {
            Err(bad(path, "neither a PyTorch zip archive nor a safetensors file"))
        }
    }

    /// Reads a safetensors file.
    ///
    /// # Errors
    /// [`CheckpointError::Format`] when the file is not valid safetensors.
    pub fn from_safetensors(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        let path = path.as_ref();
        let tensors = Tensor::read_safetensors(path).map_err(|e| bad(path, e.to_string()))?;
        let mut map = BTreeMap::new();
        for (name, t) in tensors {
            map.insert(name, to_f32(t).map_err(|e| bad(path, e.to_string()))?);
        }
        Ok(Self::from_map(map))
    }

    /// Reads a PyTorch zip checkpoint holding a pickled state dict.
    ///
    /// # Errors
    /// [`CheckpointError::Format`] for anything that is not such an archive.
    pub fn from_pth(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut zip =
            zip::ZipArchive::new(file).map_err(|e| bad(path, format!("not a readable zip archive ({e})")))?;
        let pkl_name = zip
            .file_names()
            .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
            .min()
            .map(str::to_owned)
            .ok_or_else(|| bad(path, "zip archive without data.pkl (not a torch.save checkpoint)"))?;
        let prefix = &pkl_name[..pkl_name.len() - "data.pkl".len()];
        let pkl = read_entry(&mut zip, &pkl_name).map_err(|e| bad(path, e))?;
        let value = unpickle(&pkl).map_err(|e| bad(path, format!("{pkl_name}: {e}")))?;
        let items =
            state_dict_items(value).ok_or_else(|| bad(path, format!("{pkl_name} holds no state dict")))?;
        let mut storages: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut map = BTreeMap::new();
        for (key, value) in items {
            let (Value::Str(name), Value::Tensor(tref)) = (key, value) else {
                return Err(bad(path, "state dict entry is not a name -> tensor pair"));
            };
            let entry = format!("{prefix}data/{}", tref.storage.key);
            if !storages.contains_key(&entry) {
                let bytes = read_entry(&mut zip, &entry).map_err(|e| bad(path, e))?;
                storages.insert(entry.clone(), bytes);
            }
            let t = build_tensor(&storages[&entry], &tref)
                .map_err(|e| bad(path, format!("tensor `{name}`: {e}")))?;
            map.insert(name, t);
        }
        Ok(Self::from_map(map))
    }

    /// Wraps named tensors (converted to `f32`).
    pub fn from_tensors(
        tensors: impl IntoIterator<Item = (String, Tensor)>,
    ) -> Result<Self, CheckpointError> {
        let mut map = BTreeMap::new();
        for (k, t) in tensors {
            map.insert(k, to_f32(t)?);
        }
        Ok(Self::from_map(map))
    }

    /// The same state dict with every tensor on `device` (a copy when `device` is not
    /// where they are).
    ///
    /// # Errors
    /// [`CheckpointError::Torch`] when LibTorch cannot move them (no memory on the device).
    pub fn to_device(&self, device: tch::Device) -> Result<Self, CheckpointError> {
        let mut map = BTreeMap::new();
        for (k, t) in &self.tensors {
            map.insert(k.clone(), t.f_to_device(device)?);
        }
        Ok(Self::from_map(map))
    }

    fn from_map(tensors: BTreeMap<String, Tensor>) -> Self {
        Weights {
            tensors,
            used: RefCell::new(BTreeSet::new()),
        }
    }

    /// Parameter names in key order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The tensor stored under `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Number of parameters tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the state dict is empty.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    pub(crate) fn root<'a>(&'a self, model: &'a str) -> Vb<'a> {
        Vb {
            weights: self,
            prefix: String::new(),
            model,
        }
    }

    /// Fails on keys no module took, like `load_state_dict(strict=True)`.
    pub(crate) fn check_all_used(&self, model: &str) -> Result<(), CheckpointError> {
        let used = self.used.borrow();
        let mut unused = self.tensors.keys().filter(|k| !used.contains(*k));
        if let Some(first) = unused.next() {
            return Err(CheckpointError::UnexpectedWeights {
                model: model.to_owned(),
                count: 1 + unused.count(),
                first: first.clone(),
            });
        }
        Ok(())
    }
}

/// The state dict in an unpickled checkpoint: the value itself when it maps names to
/// tensors (`torch.save(model.state_dict())`), else its `model` entry (detectron2's
/// checkpointer, which saves `{"model": ..., "optimizer": ..., "iteration": ...}`; the other
/// entries are ignored) or its `state_dict` entry.
fn state_dict_items(value: Value) -> Option<Vec<(Value, Value)>> {
    let Value::Dict(items) = value else {
        return None;
    };
    let all_tensors = |items: &[(Value, Value)]| items.iter().all(|(_, v)| matches!(v, Value::Tensor(_)));
    if all_tensors(&items) {
        return Some(items);
    }
    items.into_iter().find_map(|(k, v)| match (k, v) {
        (Value::Str(k), Value::Dict(inner)) if (k == "model" || k == "state_dict") && all_tensors(&inner) => {
            Some(inner)
        }
        _ => None,
    })
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn read_entry(zip: &mut zip::ZipArchive<std::fs::File>, name: &str) -> Result<Vec<u8>, String> {
    let mut entry = zip
        .by_name(name)
        .map_err(|e| format!("missing archive entry {name} ({e})"))?;
    // The declared size only sizes the first allocation, capped so a lying header cannot
    // reserve gigabytes; read_to_end grows the buffer to what is really there.
    let mut out = Vec::with_capacity(entry.size().min(1 << 26) as usize);
    entry
        .read_to_end(&mut out)
        .map_err(|e| format!("archive entry {name} is unreadable or truncated ({e})"))?;
    Ok(out)
}

fn to_f32(t: Tensor) -> Result<Tensor, tch::TchError> {
    let t = if t.kind() == Kind::Float {
        t
    } else {
        t.f_to_kind(Kind::Float)?
    };
    Ok(t.set_requires_grad(false))
}

/// Builds an `f32` tensor from a storage's bytes, checking the view lies inside it first.
fn build_tensor(bytes: &[u8], t: &TensorRef) -> Result<Tensor, String> {
    let elt = t.storage.kind.elt_size_in_bytes();
    let need = (t.storage.numel as usize)
        .checked_mul(elt)
        .ok_or("storage size overflows")?;
    if bytes.len() < need {
        return Err(format!("storage holds {} bytes, {} needed", bytes.len(), need));
    }
    let mut last = t.offset;
    let mut empty = false;
    for (&s, &st) in t.size.iter().zip(&t.stride) {
        if s == 0 {
            empty = true;
        } else {
            last = (s - 1)
                .checked_mul(st)
                .and_then(|v| last.checked_add(v))
                .ok_or("tensor geometry overflows")?;
        }
    }
    if !empty && last >= t.storage.numel {
        return Err(format!(
            "view (size {:?}, stride {:?}, offset {}) reaches past the storage of {} elements",
            t.size, t.stride, t.offset, t.storage.numel
        ));
    }
    let storage = Tensor::f_from_data_size(&bytes[..need], &[t.storage.numel], t.storage.kind)
        .map_err(|e| e.to_string())?;
    let view = if empty {
        Tensor::f_zeros(t.size.as_slice(), (t.storage.kind, tch::Device::Cpu)).map_err(|e| e.to_string())?
    } else {
        storage
            .f_as_strided(t.size.as_slice(), t.stride.as_slice(), Some(t.offset))
            .and_then(|v| v.f_contiguous())
            .map_err(|e| e.to_string())?
    };
    to_f32(view).map_err(|e| e.to_string())
}

/// A view of [`Weights`] under a key prefix, handing out shape-checked parameters.
pub(crate) struct Vb<'a> {
    weights: &'a Weights,
    prefix: String,
    model: &'a str,
}

impl<'a> Vb<'a> {
    /// The view under `prefix.name`.
    pub(crate) fn pp(&self, name: impl std::fmt::Display) -> Vb<'a> {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        Vb {
            weights: self.weights,
            prefix,
            model: self.model,
        }
    }

    /// The full key of `name` under this prefix.
    pub(crate) fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// Whether the checkpoint holds `prefix.name`.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.weights.tensors.contains_key(&self.key(name))
    }

    /// The parameter `prefix.name`, which must have `shape`.
    pub(crate) fn get(&self, name: &str, shape: &[i64]) -> Result<Tensor, CheckpointError> {
        let key = self.key(name);
        let t = self
            .weights
            .tensors
            .get(&key)
            .ok_or_else(|| CheckpointError::MissingWeight {
                name: key.clone(),
                model: self.model.to_owned(),
            })?;
        if t.size() != shape {
            return Err(CheckpointError::WeightShape {
                name: key,
                model: self.model.to_owned(),
                expected: shape.to_vec(),
                found: t.size(),
            });
        }
        self.weights.used.borrow_mut().insert(key);
        Ok(t.shallow_clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torch::pickle::StorageRef;

    fn tensor() -> Value {
        Value::Tensor(TensorRef {
            storage: StorageRef {
                key: "0".into(),
                kind: Kind::Float,
                numel: 1,
            },
            offset: 0,
            size: vec![1],
            stride: vec![1],
        })
    }

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn the_state_dict_is_the_value_or_its_model_entry() {
        let plain = Value::Dict(vec![(s("w"), tensor())]);
        assert_eq!(state_dict_items(plain).unwrap().len(), 1);
        // detectron2's checkpointer: other entries (optimizer state with objects of any
        // class, the iteration) are ignored.
        let d2 = Value::Dict(vec![
            (
                s("model"),
                Value::Dict(vec![(s("a"), tensor()), (s("b"), tensor())]),
            ),
            (
                s("optimizer"),
                Value::Dict(vec![(s("state"), Value::Opaque("torch.optim.Foo".into()))]),
            ),
            (s("iteration"), Value::Int(7)),
        ]);
        assert_eq!(state_dict_items(d2).unwrap().len(), 2);
        // Objects where tensors should be, or no model entry: no state dict.
        let bad = Value::Dict(vec![(
            s("model"),
            Value::Dict(vec![(s("a"), Value::Opaque("numpy.ndarray".into()))]),
        )]);
        assert!(state_dict_items(bad).is_none());
        assert!(state_dict_items(Value::Dict(vec![(s("iteration"), Value::Int(1))])).is_none());
        assert!(state_dict_items(Value::List(vec![])).is_none());
    }
}
