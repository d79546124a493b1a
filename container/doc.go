// Package container is the root of godwit's rootless OCI container runtime.
//
// The runtime is split into small packages, each owning one mechanism:
//
//	spec        loading, defaulting and validating an OCI bundle's config.json
//	securepath  resolving bundle- and container-supplied paths inside a rootfs
//	mount       the new mount API (fsopen, fsmount, open_tree, mount_setattr, move_mount)
//	idmap       uid/gid mappings, /etc/subuid, newuidmap and id-mapping user namespaces
//	seccomp     a BPF compiler for the OCI seccomp section and the user-notification supervisor
//	runtime     create/start/state/kill/delete/exec/list/mount and the re-executed init
//
// See docs/containers.md for what is isolated and why.
package container
