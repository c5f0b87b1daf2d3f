//! Times EfficientNet-Lite0's forward pass on a random batch (no pipeline around
//! it): `cargo run --release -p regatta-actors --example efficientnet_timing [BATCH] [ROUNDS]`.
//! Reads the model from `$REGATTA_EFFICIENTNET_DIR`.

use std::time::Instant;

use candle_core::{Device, Tensor};
use regatta_actors::efficientnet::EfficientNetLite0;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let batch: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(32);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let dir = regatta_actors::efficientnet::default_dir();
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
    let net = EfficientNetLite0::new(tensors, &Device::Cpu)?;
    let x = Tensor::randn(0f32, 1f32, (batch, 3, 224, 224), &Device::Cpu)?;
    net.forward(&x)?;
    let t = Instant::now();
    for _ in 0..rounds {
        net.forward(&x)?;
    }
    let per_image = t.elapsed().as_secs_f64() / (rounds * batch) as f64;
    println!("batch {batch}: {:.2} ms per image", per_image * 1e3);
    Ok(())
}
