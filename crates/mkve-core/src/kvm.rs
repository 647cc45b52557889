//! Whether /dev/kvm answers: a one-instruction guest (`hlt` at the x86
//! reset vector) must run and exit with KVM_EXIT_HLT. This proves the
//! kernel side works; it cannot prove that a full qemu guest will (on some
//! nested setups that hangs later). `answers` runs the probe in a child
//! process with a time limit, so a probe that hangs cannot hang the caller.

// FFI: the KVM ioctls of the probe (a VM, its memory and a vCPU, run).
#![allow(unsafe_code)]

use std::path::Path;
use std::time::Duration;

use crate::error::Error;
use crate::exec::Cmd;

const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
const KVM_CREATE_VM: libc::c_ulong = 0xAE01;
const KVM_GET_VCPU_MMAP_SIZE: libc::c_ulong = 0xAE04;
const KVM_CREATE_VCPU: libc::c_ulong = 0xAE41;
const KVM_RUN: libc::c_ulong = 0xAE80;
const KVM_SET_USER_MEMORY_REGION: libc::c_ulong = 0x4020_AE46;
const KVM_EXIT_HLT: u32 = 5;

#[repr(C)]
struct MemoryRegion {
    slot: u32,
    flags: u32,
    guest_phys_addr: u64,
    memory_size: u64,
    userspace_addr: u64,
}

fn errno(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Run the probe in this process. Only for the child `answers` starts.
pub fn probe() -> Result<(), String> {
    // SAFETY: plain ioctls and mmaps on descriptors this function owns;
    // the memory handed to KVM stays mapped until the process exits.
    unsafe {
        let kvm = libc::open(c"/dev/kvm".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if kvm < 0 {
            return Err(errno("cannot open /dev/kvm"));
        }
        if libc::ioctl(kvm, KVM_GET_API_VERSION, 0) != 12 {
            return Err("/dev/kvm: unexpected API version".into());
        }
        let vm = libc::ioctl(kvm, KVM_CREATE_VM, 0);
        if vm < 0 {
            return Err(errno("KVM_CREATE_VM"));
        }
        let size = 0x10000;
        let mem = libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if mem == libc::MAP_FAILED {
            return Err(errno("mmap"));
        }
        *(mem as *mut u8).add(0xfff0) = 0xf4; // hlt, at the reset vector 0xfffffff0
        let region = MemoryRegion {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0xffff_0000,
            memory_size: size as u64,
            userspace_addr: mem as u64,
        };
        if libc::ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0 {
            return Err(errno("KVM_SET_USER_MEMORY_REGION"));
        }
        let vcpu = libc::ioctl(vm, KVM_CREATE_VCPU, 0);
        if vcpu < 0 {
            return Err(errno("KVM_CREATE_VCPU"));
        }
        let run_size = libc::ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
        if run_size <= 0 {
            return Err(errno("KVM_GET_VCPU_MMAP_SIZE"));
        }
        let run = libc::mmap(
            std::ptr::null_mut(),
            run_size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            vcpu,
            0,
        );
        if run == libc::MAP_FAILED {
            return Err(errno("mmap of the vCPU"));
        }
        if libc::ioctl(vcpu, KVM_RUN, 0) < 0 {
            return Err(errno("KVM_RUN"));
        }
        let exit_reason = *(run as *const u32).add(2);
        if exit_reason != KVM_EXIT_HLT {
            return Err(format!(
                "a one-instruction guest exited with reason {exit_reason}, not HLT"
            ));
        }
    }
    Ok(())
}

/// Whether /dev/kvm runs a one-instruction guest within `limit`: `exe
/// probe_arg` must run `probe` and exit 0; one still running after
/// `limit` is killed.
pub fn answers(exe: &Path, probe_arg: &str, limit: Duration) -> Result<(), String> {
    if !Path::new("/dev/kvm").exists() {
        return Err(
            "/dev/kvm is missing (no KVM in this kernel, or not given to this machine)".into(),
        );
    }
    let probe = Cmd::new(exe)
        .arg(probe_arg)
        .what("the KVM probe")
        .timeout(limit);
    match probe.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(Error::Process(p)) if p.timed_out.is_some() => Err(format!(
            "/dev/kvm does not answer: a one-instruction guest did not finish in {} s",
            limit.as_secs()
        )),
        Err(e) => Err(format!("cannot run the KVM probe: {e}")),
    }
}
