//! Counts this machine's GPUs through NVML.

use std::sync::Once;

static NO_NVML: Once = Once::new();

/// GPUs NVML reports. No NVML library, no driver or any NVML error means zero GPUs,
/// logged once per process; it is never fatal.
pub fn nvml_gpu_count() -> u32 {
    match nvml_wrapper::Nvml::init().and_then(|nvml| nvml.device_count()) {
        Ok(n) => n,
        Err(e) => {
            NO_NVML.call_once(|| log::info!("no GPUs: NVML is not usable here ({e})"));
            0
        }
    }
}
