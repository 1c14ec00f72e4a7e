//! Edits as new weights, applied through `set_weight` and restored when the guard goes away.

use crate::error::{EditError, Result};
use backlens_model::{LanguageModel, Module};
use candle_core::Tensor;
use std::ops::Deref;

/// One replaced weight matrix.
#[derive(Debug, Clone)]
pub struct WeightUpdate {
    /// The layer of the matrix.
    pub layer: usize,
    /// The matrix within the layer.
    pub module: Module,
    /// The edited weight, `(d_out, d_in)` (the canonical layout).
    pub weight: Tensor,
}

/// The result of an edit method: the weights to replace (none when the method declined, e.g.
/// forward pass shift when the target already is the model's prediction).
#[derive(Debug, Clone, Default)]
pub struct Edit {
    /// The new weights.
    pub updates: Vec<WeightUpdate>,
    /// Indices of the requests the method skipped (left unedited).
    pub skipped: Vec<usize>,
    /// The method's loss before the edit (mean NLL over the target sub-tokens), when it
    /// computed one.
    pub loss_before: Option<f32>,
    /// Number of optimizer steps taken (0 for forward pass shift and skipped edits).
    pub steps: usize,
}

impl Edit {
    /// Whether the edit changes nothing.
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
    }
}

/// An edit applied to a model. The model reads as edited through [`Deref`] and
/// [`EditGuard::model`]; the original weights come back, bit-identical (the very tensors that
/// were there), when the guard is dropped or [`EditGuard::restore`]d, so an evaluated edit cannot
/// outlive its evaluation.
pub struct EditGuard<'m, M: LanguageModel + ?Sized> {
    model: &'m mut M,
    /// The original weights, in the order they were replaced.
    originals: Vec<(usize, Module, Tensor)>,
}

impl<'m, M: LanguageModel + ?Sized> EditGuard<'m, M> {
    /// Applies `edit` to `model`. If one replacement fails, those already made are undone before
    /// the error is returned.
    ///
    /// Every new weight is checked first: one with a NaN or infinite entry is refused with
    /// [`EditError::NonFiniteWeight`] (naming its layer and module) and nothing is replaced.
    pub fn apply(model: &'m mut M, edit: &Edit) -> Result<EditGuard<'m, M>> {
        for u in &edit.updates {
            check_finite(u)?;
        }
        let mut guard = EditGuard { model, originals: Vec::with_capacity(edit.updates.len()) };
        for u in &edit.updates {
            let original = guard.model.weight(u.layer, u.module)?.clone();
            guard.model.set_weight(u.layer, u.module, u.weight.clone())?;
            guard.originals.push((u.layer, u.module, original));
        }
        Ok(guard) // on error above, dropping `guard` restores what was replaced
    }

    /// The edited model.
    pub fn model(&self) -> &M {
        self.model
    }

    /// Restores the original weights now, reporting a failure instead of panicking.
    pub fn restore(mut self) -> Result<()> {
        self.restore_all()
    }

    fn restore_all(&mut self) -> Result<()> {
        // Reverse order, so a weight replaced twice ends as the first original.
        while let Some((layer, module, original)) = self.originals.pop() {
            self.model.set_weight(layer, module, original)?;
        }
        Ok(())
    }
}

impl<M: LanguageModel + ?Sized> Deref for EditGuard<'_, M> {
    type Target = M;
    fn deref(&self) -> &M {
        self.model
    }
}

impl<M: LanguageModel + ?Sized> Drop for EditGuard<'_, M> {
    fn drop(&mut self) {
        // Restoring a tensor of the shape that was there cannot fail in practice; if it does,
        // the model is in an unknown state and must not be used further.
        if let Err(e) = self.restore_all() {
            if !std::thread::panicking() {
                panic!("restoring the weights after an edit failed: {e}");
            }
        }
    }
}

/// Refuses an update whose weight holds a NaN or an infinity.
fn check_finite(u: &WeightUpdate) -> Result<()> {
    let values = u.weight.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
    let count = values.iter().filter(|v| !v.is_finite()).count();
    if count > 0 {
        return Err(EditError::NonFiniteWeight { layer: u.layer, module: u.module.name(), count });
    }
    Ok(())
}

/// Checks that a method's setting names an existing layer.
pub(crate) fn check_layer(model: &dyn LanguageModel, layer: usize) -> Result<()> {
    if layer >= model.n_layers() {
        return Err(EditError::Setting(format!(
            "layer {layer} does not exist: the model has {} layers (0..{})",
            model.n_layers(),
            model.n_layers() - 1
        )));
    }
    Ok(())
}
