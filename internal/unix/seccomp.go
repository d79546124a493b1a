package unix

// SeccompNotifSizes is struct seccomp_notif_sizes: the kernel's sizes of
// the user-notification structs.
type SeccompNotifSizes struct {
	Notif     uint16 // struct seccomp_notif
	NotifResp uint16 // struct seccomp_notif_resp
	Data      uint16 // struct seccomp_data
}
