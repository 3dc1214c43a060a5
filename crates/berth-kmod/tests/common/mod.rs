//! A fake `/lib/modules/<release>` tree, written by hand as depmod would.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use berth_kmod::{ModprobeConfig, ModuleIndex};
use tempfile::TempDir;

pub const RELEASE: &str = "6.12.0-test";

pub const MODULES_DEP: &str = "\
kernel/fs/fat/vfat.ko.xz: kernel/fs/fat/fat.ko.xz kernel/fs/nls/nls_base.ko.xz
kernel/fs/fat/fat.ko.xz: kernel/fs/nls/nls_base.ko.xz
kernel/fs/nls/nls_base.ko.xz:
kernel/net/netfilter/nft_chain_nat.ko.xz: kernel/net/netfilter/nf_nat.ko.xz kernel/net/netfilter/nf_tables.ko.xz kernel/net/netfilter/nf_conntrack.ko.xz kernel/lib/libcrc32c.ko.xz kernel/net/netfilter/nfnetlink.ko.xz
kernel/net/netfilter/nf_nat.ko.xz: kernel/net/netfilter/nf_conntrack.ko.xz kernel/lib/libcrc32c.ko.xz
kernel/net/netfilter/nf_tables.ko.xz: kernel/lib/libcrc32c.ko.xz kernel/net/netfilter/nfnetlink.ko.xz
kernel/net/netfilter/nf_conntrack.ko.xz: kernel/lib/libcrc32c.ko.xz
kernel/lib/libcrc32c.ko.xz:
kernel/net/netfilter/nfnetlink.ko.xz:
kernel/drivers/virtio/virtio_pci.ko.xz:
kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz
kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz
kernel/net/core/failover.ko.xz:
kernel/drivers/usb/serial/ftdi_sio.ko.xz: kernel/drivers/usb/serial/usbserial.ko.xz
kernel/drivers/usb/serial/usbserial.ko.xz:
kernel/drivers/input/misc/pcspkr.ko.xz:
kernel/drivers/nvme/host/nvme-core.ko.xz:
kernel/drivers/nvme/host/nvme.ko.xz: kernel/drivers/nvme/host/nvme-core.ko.xz
kernel/crypto/crc32c_generic.ko.xz:
kernel/arch/x86/crypto/crc32c-intel.ko.xz:
kernel/drivers/misc/nvme_post.ko.xz:
";

pub const MODULES_ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias fs-vfat vfat
alias nft-chain-2-nat nft_chain_nat
alias nft-chain-10-nat nft_chain_nat
alias net-pf-16-proto-12 nfnetlink
alias pci:v00001AF4d00001000sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias usb:v0403p6001d0[0-5]*dc*dsc*dp*ic*isc*ip*in* ftdi_sio
alias platform:pcspkr pcspkr
alias pci:v*d*sv*sd*bc01sc08i02* nvme
alias crypto-crc32c crc32c_generic
alias crypto-crc32c crc32c-intel
";

pub const MODULES_SOFTDEP: &str = "\
# Soft dependencies extracted from modules themselves.
softdep nvme pre: crypto-crc32c post: nvme_post
";

pub const MODULES_BUILTIN: &str = "\
kernel/fs/ext4/ext4.ko
kernel/net/packet/af_packet.ko
";

pub const MODULES_BUILTIN_MODINFO: &[u8] = b"ext4.alias=fs-ext4\0ext4.alias=ext2\0\
ext4.file=fs/ext4/ext4\0sha256_generic.alias=crypto-sha256\0sha256_generic.file=crypto/sha256_generic\0";

/// A module tree in a tempdir: `root/lib/modules/RELEASE`.
pub struct Tree {
    pub root: TempDir,
}

impl Tree {
    pub fn new() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let tree = Tree { root };
        let dir = tree.dir();
        fs::create_dir_all(&dir).expect("module dir");
        fs::write(dir.join("modules.dep"), MODULES_DEP).expect("write");
        fs::write(dir.join("modules.alias"), MODULES_ALIAS).expect("write");
        fs::write(dir.join("modules.softdep"), MODULES_SOFTDEP).expect("write");
        fs::write(dir.join("modules.builtin"), MODULES_BUILTIN).expect("write");
        fs::write(dir.join("modules.builtin.modinfo"), MODULES_BUILTIN_MODINFO).expect("write");
        tree
    }

    pub fn dir(&self) -> PathBuf {
        self.root.path().join("lib/modules").join(RELEASE)
    }

    pub fn index(&self) -> ModuleIndex {
        ModuleIndex::load(&self.dir()).expect("index loads")
    }

    pub fn index_with(&self, config: &str) -> ModuleIndex {
        self.index()
            .with_config(ModprobeConfig::parse(config, "test.conf"))
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir().join(relative)
    }
}

pub fn write(path: &Path, contents: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(path, contents).expect("write");
}
