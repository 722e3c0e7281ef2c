//! The aggregator's client plan applied around each optimizer step of local training:
//! FedProx's proximal term and a gradient offset (SCAFFOLD as published) go into the gradient
//! before clipping and AdamW; a weight offset (SCAFFOLD as OpenFedLLM applies it) is subtracted
//! from the parameters after the step, `w ← w − lr · offset`, so neither clipping nor Adam's
//! normalization rescales it.

use candle_core::{DType, Tensor, Var};
use fedpref_plugin_api::ClientPlan;

use super::optimizer::{AdamW, StepStats};
use crate::Result;

/// One optimizer step under `plan`: the gradient terms, AdamW (with its clipping), then the
/// weight offset at the optimizer's learning rate. `global` is the adapter the client started
/// from (FedProx's anchor).
///
/// # Errors
/// Tensor errors; gradients that do not match the vars.
pub fn planned_step(
    optimizer: &mut AdamW,
    vars: &[Var],
    grads: &mut [Tensor],
    global: &[f32],
    plan: &ClientPlan,
) -> Result<StepStats> {
    add_gradient_terms(grads, vars, global, plan)?;
    let stats = optimizer.step(grads)?;
    subtract_weight_offset(vars, &plan.weight_offset, optimizer.config().lr)?;
    Ok(stats)
}

/// `g += mu (w − w_global) + gradient_offset`, var by var over the flat vectors.
pub(crate) fn add_gradient_terms(
    grads: &mut [Tensor],
    vars: &[Var],
    global: &[f32],
    plan: &ClientPlan,
) -> Result<()> {
    if plan.prox_mu == 0.0 && plan.gradient_offset.is_empty() {
        return Ok(());
    }
    let mut at = 0;
    for (grad, var) in grads.iter_mut().zip(vars) {
        let n = var.elem_count();
        let mut extra = Tensor::zeros(var.shape(), DType::F32, var.device())?;
        if plan.prox_mu != 0.0 {
            let anchor = Tensor::from_slice(&global[at..at + n], var.shape(), var.device())?;
            let w = var.as_tensor().to_dtype(DType::F32)?;
            extra = (extra + ((w - anchor)? * f64::from(plan.prox_mu))?)?;
        }
        if !plan.gradient_offset.is_empty() {
            let offset = &plan.gradient_offset[at..at + n];
            extra = (extra + Tensor::from_slice(offset, var.shape(), var.device())?)?;
        }
        *grad = (&*grad + extra.to_dtype(grad.dtype())?)?;
        at += n;
    }
    Ok(())
}

/// `w −= lr · offset`, var by var over the flat vector; nothing for an empty offset.
fn subtract_weight_offset(vars: &[Var], offset: &[f32], lr: f64) -> Result<()> {
    if offset.is_empty() {
        return Ok(());
    }
    let mut at = 0;
    for var in vars {
        let n = var.elem_count();
        let shift = (Tensor::from_slice(&offset[at..at + n], var.shape(), var.device())? * lr)?;
        let w = var.as_tensor().detach();
        var.set(&(w - shift.to_dtype(var.dtype())?)?)?;
        at += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::train::optimizer::AdamWConfig;

    const LR: f64 = 0.125;
    const START: [f32; 2] = [0.5, -0.25];

    /// Two AdamW steps (TRL's defaults, clipping at 1.0) from `START` with the given gradients
    /// under `plan`; the parameters after.
    fn two_steps(grads: [[f32; 2]; 2], plan: &ClientPlan) -> Vec<f32> {
        let w = Var::from_slice(&START, 2, &Device::Cpu).expect("var");
        let vars = vec![w.clone()];
        let mut optimizer = AdamW::new(vars.clone(), AdamWConfig::with_lr(LR)).expect("adamw");
        for g in grads {
            let mut grads = vec![Tensor::from_slice(&g, 2, &Device::Cpu).expect("grad")];
            planned_step(&mut optimizer, &vars, &mut grads, &START, plan).expect("step");
        }
        w.as_tensor().to_vec1().expect("values")
    }

    fn assert_near(got: &[f32], want: [f64; 2], what: &str) {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (f64::from(*g) - w).abs() < 1e-6,
                "{what}: {got:?} against {want:?}"
            );
        }
    }

    fn offsets(weight: [f32; 2], gradient: [f32; 2]) -> ClientPlan {
        ClientPlan {
            weight_offset: weight.to_vec().into(),
            gradient_offset: gradient.to_vec().into(),
            ..ClientPlan::plain()
        }
    }

    /// SCAFFOLD's correction `c − c_i` on two clients, two steps each, at lr 1/8, computed in
    /// float64 by hand (AdamW's moments written out; the numbers are the output of that script):
    /// after each AdamW step OpenFedLLM's `SCAFFOLD_Callback.on_step_end` sets
    /// `w ← w − lr (c − c_i)`, so two steps move the parameters by exactly `2 lr (c − c_i)` more
    /// than plain training. Client A: `c − c_A = (1/4, −1/2)`, gradients `(1/2, −1/4)` then
    /// `(1/4, 1/4)`: step 1 moves by `lr·sign(g)` to `(3/8, −1/8)`, the offset to
    /// `(11/32, −1/16)`; step 2 (m̂ = 0.07/0.19, v̂ = 0.00031225/0.001999) to
    /// `(0.1959775506, −0.0065789521)`. Client B likewise.
    #[test]
    fn the_weight_offset_is_subtracted_after_each_adamw_step() {
        let a = two_steps(
            [[0.5, -0.25], [0.25, 0.25]],
            &offsets([0.25, -0.5], [0.0; 2]),
        );
        assert_near(&a, [0.1959775506, -0.0065789521], "client A");
        let b = two_steps(
            [[-0.5, 0.125], [0.125, -0.375]],
            &offsets([-0.125, 0.25], [0.0; 2]),
        );
        assert_near(&b, [0.7149335173, -0.3757262630], "client B");

        // Without an offset, exactly 2 lr (c − c_A) = (1/16, −1/8) apart.
        let plain = two_steps([[0.5, -0.25], [0.25, 0.25]], &ClientPlan::plain());
        assert_near(
            &plain,
            [0.1959775506 + 0.0625, -0.0065789521 - 0.125],
            "plain",
        );
    }

    /// The same correction through the gradient (SCAFFOLD as published, with SGD in mind) passes
    /// through Adam's normalization and lands elsewhere: the same script gives these values.
    #[test]
    fn the_gradient_offset_goes_through_adamw() {
        let a = two_steps(
            [[0.5, -0.25], [0.25, 0.25]],
            &offsets([0.0; 2], [0.25, -0.5]),
        );
        assert_near(&a, [0.2529025043, -0.0150177642], "client A");
        let b = two_steps(
            [[-0.5, 0.125], [0.125, -0.375]],
            &offsets([0.0; 2], [-0.125, 0.25]),
        );
        assert_near(&b, [0.7087572779, -0.4250273164], "client B");
    }

    #[test]
    fn the_plan_adds_the_proximal_term_and_the_offset_to_the_gradient() {
        let w = Var::from_slice(&[1.0f32, 2.0, -1.0], 3, &Device::Cpu).expect("var");
        let mut grads =
            vec![Tensor::from_slice(&[0.5f32, 0.0, 0.0], 3, &Device::Cpu).expect("grad")];
        let plan = ClientPlan {
            prox_mu: 0.5,
            gradient_offset: vec![0.25f32, -0.25, 1.0].into(),
            ..ClientPlan::plain()
        };
        add_gradient_terms(&mut grads, &[w], &[0.0, 2.0, 1.0], &plan).expect("apply");
        // g + mu (w − w_global) + offset
        assert_eq!(
            grads[0].to_vec1::<f32>().expect("values"),
            [0.5 + 0.5 + 0.25, 0.0 - 0.25, -1.0 + 1.0]
        );
    }
}
