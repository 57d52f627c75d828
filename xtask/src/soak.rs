//! `cargo xtask soak`: builds and runs `crates/gmp-runtime/examples/soak.rs`, which does
//! the work and the checking (see its module docs and `cli::SOAK_USAGE`).

use crate::{cargo, cli::SoakOpts, Ci};

/// Runs the soak for `opts.seconds`; a violation fails the step.
pub fn soak(ci: &mut Ci, opts: &SoakOpts) {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "-q",
        "-p",
        "gmp-runtime",
        "--example",
        "soak",
        "--",
        "--seconds",
    ])
    .arg(format!("{}", opts.seconds));
    if let Some(seed) = opts.seed {
        cmd.arg("--seed").arg(seed.to_string());
    }
    ci.step(&format!("soak {}s", opts.seconds), &mut cmd);
}
