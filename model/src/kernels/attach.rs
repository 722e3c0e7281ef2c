//! A value computed without an autograd graph, attached to its inputs with a hand-written
//! backward ([`attach`]): the pattern behind every memory-saving op that runs on any device
//! (chunked head log-softmax, chunked attention, checkpointed layers, the GPU softmaxes).
//!
//! The forward pass runs on detached tensors, so candle keeps none of its intermediates; the
//! attached op's result is a copy of the value whose gradient flows to the inputs through
//! [`Backward::backward`], which may recompute whatever it needs. The op gives up its own
//! reference to the value once the copy exists, so the value is held once.

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CudaStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Storage, Tensor,
};

use crate::Result;

/// The gradients of an attached value with respect to its inputs.
pub trait Backward: Send + Sync {
    /// The op's name in errors.
    fn name(&self) -> &'static str;

    /// Given the inputs (in [`attach`]'s order), the attached value and its gradient, the
    /// gradient of each input (`None`: no gradient).
    ///
    /// # Errors
    /// Tensor errors.
    fn backward(
        &self,
        inputs: &[&Tensor],
        value: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Vec<Option<Tensor>>>;
}

/// Returns `value` (computed from `inputs` without a graph) with `backward` as the gradient
/// of its inputs: 1 to 3 inputs.
///
/// # Errors
/// No or more than 3 inputs; tensor errors.
pub fn attach(
    inputs: &[&Tensor],
    value: Tensor,
    backward: impl Backward + 'static,
) -> Result<Tensor> {
    let value = value.detach();
    let fresh = value.is_contiguous() && value.layout().start_offset() == 0;
    let value = if fresh {
        value
    } else {
        value.force_contiguous()?
    };
    let op = Attached {
        value: Mutex::new(Some(value)),
        backward: Box::new(backward),
    };
    Ok(match inputs {
        [a] => a.apply_op1(op)?,
        [a, b] => a.apply_op2(b, op)?,
        [a, b, c] => a.apply_op3(b, c, op)?,
        _ => {
            return Err(crate::Error::Usage(format!(
                "attach: {} inputs; 1 to 3 are supported",
                inputs.len()
            )))
        }
    })
}

/// The custom op: hands out its value once, then keeps only the backward.
struct Attached {
    value: Mutex<Option<Tensor>>,
    backward: Box<dyn Backward>,
}

impl Attached {
    /// The value's storage, copied, and its shape; the op's reference is dropped.
    fn take<S>(&self, pick: impl Fn(&Storage) -> Option<&S>) -> candle_core::Result<(S, Shape)>
    where
        S: BackendStorage,
    {
        let value = self.value.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(value) = value else {
            candle_core::bail!(
                "{}: the attached value was already taken",
                self.backward.name()
            )
        };
        let (storage, layout) = value.storage_and_layout();
        let Some(storage) = pick(&storage) else {
            candle_core::bail!("{}: the value is on another device", self.backward.name())
        };
        Ok((storage.try_clone(layout)?, layout.shape().clone()))
    }

    fn cpu(&self) -> candle_core::Result<(CpuStorage, Shape)> {
        self.take(|s| match s {
            Storage::Cpu(c) => Some(c),
            _ => None,
        })
    }

    fn cuda(&self) -> candle_core::Result<(CudaStorage, Shape)> {
        self.take(|s| match s {
            Storage::Cuda(c) => Some(c),
            _ => None,
        })
    }

    fn grads<const N: usize>(
        &self,
        inputs: [&Tensor; N],
        value: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<[Option<Tensor>; N]> {
        let grads = self.backward.backward(&inputs, value, grad)?;
        let n = grads.len();
        grads.try_into().map_err(|_| {
            candle_core::Error::Msg(format!(
                "{}: {n} gradients for {N} inputs",
                self.backward.name()
            ))
        })
    }
}

impl CustomOp1 for Attached {
    fn name(&self) -> &'static str {
        self.backward.name()
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.cpu()
    }

    fn cuda_fwd(&self, _: &CudaStorage, _: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        self.cuda()
    }

    fn bwd(&self, a: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let [ga] = self.grads([a], res, grad)?;
        Ok(ga)
    }
}

impl CustomOp2 for Attached {
    fn name(&self) -> &'static str {
        self.backward.name()
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.cpu()
    }

    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        self.cuda()
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let [ga, gb] = self.grads([a, b], res, grad)?;
        Ok((ga, gb))
    }
}

impl CustomOp3 for Attached {
    fn name(&self) -> &'static str {
        self.backward.name()
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.cpu()
    }

    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        self.cuda()
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [ga, gb, gc] = self.grads([a, b, c], res, grad)?;
        Ok((ga, gb, gc))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    /// `y = a * b`, computed detached, with its product rule attached.
    struct Product;

    impl Backward for Product {
        fn name(&self) -> &'static str {
            "test-product"
        }

        fn backward(
            &self,
            inputs: &[&Tensor],
            _: &Tensor,
            grad: &Tensor,
        ) -> candle_core::Result<Vec<Option<Tensor>>> {
            Ok(vec![Some((grad * inputs[1])?), Some((grad * inputs[0])?)])
        }
    }

    #[test]
    fn attached_value_carries_the_hand_written_gradient() {
        let dev = Device::Cpu;
        let a = Var::new(&[1f32, 2.0, 3.0], &dev).unwrap();
        let b = Var::new(&[4f32, -5.0, 6.0], &dev).unwrap();
        let value = (a.detach() * b.detach()).unwrap();
        let y = attach(&[a.as_tensor(), b.as_tensor()], value, Product).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), [4.0, -10.0, 18.0]);
        let grads = (y * 2.0).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(
            grads.get(&a).unwrap().to_vec1::<f32>().unwrap(),
            [8.0, -10.0, 12.0]
        );
        assert_eq!(
            grads.get(&b).unwrap().to_vec1::<f32>().unwrap(),
            [2.0, 4.0, 6.0]
        );
    }

    #[test]
    fn a_strided_value_is_copied_and_four_inputs_are_an_error() {
        let dev = Device::Cpu;
        let a = Var::new(&[[1f32, 2.0], [3.0, 4.0]], &dev).unwrap();
        let b = Var::new(&[[1f32, 1.0], [1.0, 1.0]], &dev).unwrap();
        let value = (a.detach() * b.detach()).unwrap().t().unwrap();
        let y = attach(&[a.as_tensor(), b.as_tensor()], value, Product).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), [[1.0, 3.0], [2.0, 4.0]]);
        let t = a.as_tensor();
        assert!(attach(&[t, t, t, t], t.clone(), Product).is_err());
    }
}
