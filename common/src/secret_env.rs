//! [`secret_var`]: a secret from the environment or, in a process Ray started
//! for regatta, from a file of the package Ray unpacked for it. Ray shows a
//! job's `runtime_env.env_vars` to anyone who may list its jobs, so the Ray
//! adapter ships the cluster token and Ray's own token in a `py_modules`
//! package instead, and names that package's directory here.

use std::path::Path;

/// Set by the Ray adapter: the directory name (on `PYTHONPATH`, where Ray puts
/// `py_modules` packages) holding one file per secret, named as its variable.
pub const SECRETS_MODULE_VAR: &str = "REGATTA_SECRETS_MODULE";

/// The variable `name` from the environment; without it, the file `name` in
/// the secrets directory [`SECRETS_MODULE_VAR`] names, on `PYTHONPATH`.
pub fn secret_var(name: &str) -> Option<String> {
    if let Ok(v) = std::env::var(name) {
        return Some(v);
    }
    let module = std::env::var(SECRETS_MODULE_VAR).ok()?;
    let python_path = std::env::var_os("PYTHONPATH")?;
    secret_in(&module, name, std::env::split_paths(&python_path))
}

/// The secret `name` in the first `dirs/module/name` that exists. Both names
/// must be plain (no separators, no `..`): they come from the environment.
fn secret_in(
    module: &str,
    name: &str,
    dirs: impl IntoIterator<Item = std::path::PathBuf>,
) -> Option<String> {
    let plain = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && !s.contains(['/', '\\'])
            && Path::new(s).is_relative()
    };
    if !plain(module) || !plain(name) {
        return None;
    }
    dirs.into_iter()
        .filter(|d| !d.as_os_str().is_empty())
        .find_map(|d| std::fs::read_to_string(d.join(module).join(name)).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_read_from_the_first_python_path_directory_holding_it() {
        let root =
            std::env::temp_dir().join(format!("regatta-secret-env-{}", crate::random_hex_128()));
        let (a, b) = (root.join("a"), root.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(b.join("regatta_secrets")).unwrap();
        std::fs::write(b.join("regatta_secrets/REGATTA_TOKEN"), "s3cret").unwrap();
        let dirs = || vec![a.clone(), b.clone()];
        assert_eq!(
            secret_in("regatta_secrets", "REGATTA_TOKEN", dirs()).as_deref(),
            Some("s3cret")
        );
        assert_eq!(secret_in("regatta_secrets", "OTHER", dirs()), None);
        // Names from the environment cannot climb out of the directory.
        assert_eq!(secret_in("..", "REGATTA_TOKEN", dirs()), None);
        assert_eq!(
            secret_in(
                "regatta_secrets",
                "../regatta_secrets/REGATTA_TOKEN",
                dirs()
            ),
            None
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
