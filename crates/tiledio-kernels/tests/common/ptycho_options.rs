//! Random preprocessing options shared by the CPU and GPU ptychography tests.

use tiledio_kernels::{ClampOrder, Orientation, OutputType, PtychoParams, Reduce};
use tiledio_test_support::random::Rng;

/// Sets the reduction, clamp order, orientation and output type of `p` at random.
pub(crate) fn randomise(p: &mut PtychoParams, rng: &mut Rng) {
    p.reduce = if rng.below(2) == 0 { Reduce::Sum } else { Reduce::Mean };
    p.clamp = if rng.below(2) == 0 {
        ClampOrder::ClampThenBin
    } else {
        ClampOrder::BinThenClamp
    };
    p.orientation = Orientation::from_bits(rng.below(8) as u8).unwrap();
    p.output = [OutputType::F32, OutputType::U32, OutputType::U16][rng.below(3) as usize];
}
