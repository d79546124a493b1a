package mount

import (
	"os"

	"github.com/godwit-dev/godwit/container/idmap"
)

func userNSForTest() (*os.File, error) {
	m := idmap.Map{{ContainerID: 0, HostID: 100000, Size: 65536}}
	return idmap.UserNS(m, m)
}
