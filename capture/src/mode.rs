//! Where the datapath hooks in: the choice that both loading ([`crate::kernel`]) and the kernel
//! floor ([`crate::floor`], which features a mode needs) depend on, so it sits below both.

/// Where the datapath hooks in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// TC classifier on ingress and egress (TCX links; clsact on old kernels).
    Tc,
    /// XDP on ingress (native driver mode when supported, generic otherwise).
    Xdp,
}

impl Mode {
    /// The name used on the command line and in metadata.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tc => "tc",
            Mode::Xdp => "xdp",
        }
    }
}
