# toybox — the two commands the README promises, as root (or with sudo in front):
#   make shell   install build dependencies, build toybox and a busybox rootfs, open /bin/sh in a container
#   make test    the whole test suite (it runs real containers, so as root)
# Other root filesystems (rootfs-scripts/, README "Root filesystems"):
#   make debian-rootfs   ./debian: Debian bookworm minbase (bash, dpkg, apt) via mmdebstrap
#   make ldd-rootfs      ./ldd-rootfs: just /bin/bash, /bin/ls and their libraries (S1's chroot demo)
#   make docker-rootfs IMAGE=busybox   ./docker-rootfs: docker create + export of IMAGE

# sudo resets PATH; find the invoking user's rustup cargo too.
CARGO ?= $(shell command -v cargo 2>/dev/null || \
	ls $(HOME)/.cargo/bin/cargo $$(getent passwd "$(SUDO_USER)" | cut -d: -f6)/.cargo/bin/cargo 2>/dev/null | head -n 1)
ROOTFS ?= ./rootfs
# The chapter generator is plain rustc and lays chapters out with rustfmt.
RUSTC ?= $(dir $(CARGO))rustc
export RUSTFMT ?= $(dir $(CARGO))rustfmt
# .cargo/config.toml builds for the host's triple, so binaries land here.
BIN_DIR = target/$(shell $(RUSTC) -vV 2>/dev/null | sed -n 's/^host: //p')/release

.PHONY: all deps test-deps build rootfs debian-rootfs ldd-rootfs docker-rootfs probe shell test lint chapters bench bench-oci clean

all: build rootfs

# Debian/Ubuntu packages: gcc and libc6-dev (libc.a) to link toybox statically
# and build the static test probe, libseccomp-dev for syscallz (build.rs
# compiles the seccomp filter with it; the tests link libseccomp.a), util-linux
# for setpriv and nsenter in the tests, nftables for --net bridge's NAT (toybox
# runs `nft`), iproute2 for the network tests' fake hosts.
deps:
	@if ! dpkg -s gcc libc6-dev libseccomp-dev util-linux nftables iproute2 >/dev/null 2>&1; then \
		apt-get update -qq && apt-get install -y -qq gcc libc6-dev libseccomp-dev util-linux nftables iproute2; fi
	@test -n "$(CARGO)" || { echo "make: cargo not found: install Rust 1.88+ (https://rustup.rs)" >&2; exit 1; }

build: deps
	$(CARGO) build --release --bins
	cp $(BIN_DIR)/toybox ./toybox

rootfs:
	rootfs-scripts/busybox-rootfs.sh $(ROOTFS)

# mmdebstrap makes the tar (cached in ~/.cache/toybox/debian), toybox unpack
# shifts it into ./debian: sudo ./toybox -m ./debian -u 0 -c /bin/bash
debian-rootfs: build
	@dpkg -s mmdebstrap >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq mmdebstrap; }
	TOYBOX_BIN=./toybox rootfs-scripts/debian-rootfs.sh ./debian

ldd-rootfs:
	rootfs-scripts/ldd-rootfs.sh ./ldd-rootfs /bin/bash /bin/ls

IMAGE ?= busybox
docker-rootfs: build
	TOYBOX_BIN=./toybox rootfs-scripts/docker-export.sh $(IMAGE) ./docker-rootfs

# The tests' rootfs with the static probe (tests/probe/probe.c) as /probe,
# without running the suite: the notes' probe commands (chapter 07's audit)
# use it. The suite makes the same tree when it starts.
probe: deps
	rootfs-scripts/busybox-rootfs.sh target/test-rootfs
	cc -static -O2 -o target/test-rootfs/probe tests/probe/probe.c -lpthread

shell: build rootfs
	./toybox -u 0 -m $(ROOTFS) -c /bin/sh

# qemu and cpio for the VM lab (tests/vmlab), which boots pure cgroup v1 and
# v2 kernels; it fetches and caches Debian's kernel package itself. umoci
# builds and unpacks the OCI images tests/unpack.rs checks toybox unpack on;
# mmdebstrap makes the Debian rootfs test's tar (debian_rootfs_dpkg_and_apt).
# podman and conmon drive toybox, runc and crun in tests/podman.rs (runc and
# crun also in tests/oci.rs); without Recommends, which would add netavark,
# slirp4netns, buildah and fuse-overlayfs: the suite uses --network=none and
# the vfs driver.
test-deps: deps
	@if ! dpkg -s qemu-system-x86 cpio umoci mmdebstrap >/dev/null 2>&1; then \
		apt-get update -qq && apt-get install -y -qq qemu-system-x86 cpio umoci mmdebstrap; fi
	@if ! dpkg -s podman conmon runc crun >/dev/null 2>&1; then \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends podman conmon runc crun; fi

test: test-deps
	$(CARGO) test --release

# After editing src/: cut chapters/NN-*/ out of it again (chapters/README.md).
chapters:
	@mkdir -p target
	$(RUSTC) --edition 2024 -O -o target/chapters-generate chapters/generate.rs
	target/chapters-generate

# toybox against the kernel floor, unshare, bubblewrap, crun, runc and chroot
# (bench/run.sh), then toybox as an OCI runtime against crun and runc, alone
# and under podman (bench/oci.sh); both install the peers from Debian's
# packages. make bench-oci runs only the second.
bench:
	bench/run.sh
	bench/oci.sh

bench-oci:
	bench/oci.sh

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf ./toybox $(ROOTFS) ./debian ./ldd-rootfs ./docker-rootfs ./docker-rootfs.toybox-docker-export
