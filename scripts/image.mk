# Make fragment for the sandbox image; `include scripts/image.mk` from the
# top-level Makefile (not included yet: the lead decides).
#
# The image is built WITHOUT any container registry: scripts/build_image.sh
# debootstraps Debian bookworm (minbase + python3, python3-pandas,
# python3-numpy, python3-matplotlib, ca-certificates, and the packages of
# AGENTBOX_IMAGE_PACKAGES) from Debian's mirror and `docker import`s it.
# matplotlib's dependencies would drag in pythran's C++ toolchain, sympy and
# unicode-data; a stand-in package (agentbox-slim) provides them instead.
# Needs root, debootstrap (apt-get install -y debootstrap) and either the
# docker CLI or curl + /var/run/docker.sock (Engine API fallback).
#
# Image facts: user agent = 1000:1000 (HOME /home/agent), WORKDIR /workspace
# (1000:1000, 0755), ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8
# MPLBACKEND=Agg MPLCONFIGDIR=/tmp/matplotlib (the /tmp tmpfs: root is
# read-only and HOME is work_dir),
# CMD ["sleep","infinity"], label agentbox.recipe=<sha256 of the script +
# package list>. No procps (no ps/pkill/top) on purpose.
#
# Timings on the 2-core project machine: cold build ~1.5 min (debootstrap is
# ~85 s of it); after editing the script (recipe change) ~10-12 s, because the
# debootstrapped rootfs is cached in /var/cache/agentbox (keyed by suite, arch
# and package list, ~1.5 GB with matplotlib; the three newest are kept); up
# to date: <0.5 s. With matplotlib: cold ~4 min, from the cache ~1.5 min,
# image ~455 MB.
#
# Knobs (environment): AGENTBOX_IMAGE_BUILD_DIR (temp rootfs parent, default
# /var/tmp), AGENTBOX_IMAGE_CACHE_DIR (default /var/cache/agentbox, "none" to
# disable), AGENTBOX_IMAGE_REBUILD=1 (force), AGENTBOX_IMAGE_REFRESH=1 (also
# redo debootstrap, e.g. for Debian updates), AGENTBOX_DEBIAN_MIRROR,
# AGENTBOX_DOCKER=cli|api, DOCKER_HOST=unix://...

AGENTBOX_IMAGE ?= agentbox/sandbox:latest

.PHONY: image image-rebuild image-refresh image-clean

image:           ## build the sandbox image if its recipe changed (fast no-op otherwise)
	scripts/build_image.sh $(AGENTBOX_IMAGE)

image-rebuild:   ## rebuild the image from the cached rootfs
	AGENTBOX_IMAGE_REBUILD=1 scripts/build_image.sh $(AGENTBOX_IMAGE)

image-refresh:   ## redo debootstrap (new Debian packages) and rebuild
	AGENTBOX_IMAGE_REFRESH=1 scripts/build_image.sh $(AGENTBOX_IMAGE)

image-clean:     ## drop the image and the rootfs cache
	-docker image rm $(AGENTBOX_IMAGE)
	rm -rf /var/cache/agentbox
