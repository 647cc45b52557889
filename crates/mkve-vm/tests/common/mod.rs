//! What mkve-vm's test crates share and mkve-testkit cannot hold (it does
//! not depend on mkve-core).

use std::path::{Path, PathBuf};

use mkve_core::bundle::{self, MakeOptions, RootSource, Signing};
use mkve_core::hypervisor::Hypervisor;
use mkve_core::template::Template;
use mkve_testkit::{hooks_dir, signer};

/// A bundle of the template in `template` for `h` made at `out` from the
/// plain root `root` (no hooks run, no root needed), signed by the test
/// signer.
pub fn signed_bundle(template: &Path, h: Hypervisor, root: PathBuf, out: &Path) {
    let t = Template::load(template, &hooks_dir(), Some(h)).unwrap();
    let mut file = std::fs::File::create(out).unwrap();
    bundle::make(
        &MakeOptions {
            template: &t,
            hypervisor: h,
            root: RootSource::Dir(root),
            signing: Signing::Key(None),
            gnupg_home: Some(signer().home.clone()),
            report: &mkve_core::exec::Silent,
            output: out,
        },
        &mut file,
    )
    .unwrap();
}

/// `bundles` published into `dir` (mkve-bundle --publish) by the test
/// signer, checked against its keyring.
pub fn publish(dir: &Path, bundles: &[PathBuf]) {
    mkve_core::publish::publish(&mkve_core::publish::PublishOptions {
        dir,
        bundles,
        keyring: &signer().keyring,
        allow_unsigned: false,
        sign_key: None,
        gnupg_home: Some(&signer().home),
        valid_for: None,
        report: &mkve_core::exec::Silent,
    })
    .unwrap();
}
