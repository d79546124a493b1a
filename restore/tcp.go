package restore

import (
	"os"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/internal/files"
)

// establishedTCP tells a connection dumped with its TCP_REPAIR state.
func establishedTCP(d *files.Desc) bool {
	return d.Kind == files.KindTCP && d.Socket != nil && d.Socket.TCP != nil && !d.Socket.TCP.Closed
}

// createTCP recreates an established connection, silent (in repair mode)
// until activateTCP: during a migration the network moves to this host in
// between.
func (rs *restorer) createTCP(d *files.Desc) (*os.File, error) {
	file, p, err := files.CreateTCP(d)
	if err != nil {
		return nil, err
	}
	rs.objs.keep = append(rs.objs.keep, file)
	rs.tree.tcp = append(rs.tree.tcp, p)
	return file, nil
}

// activateTCP takes the established connections out of repair mode, just
// before the processes run.
func (t *tree) activateTCP() error {
	for _, p := range t.tcp {
		if err := p.Activate(); err != nil {
			return &fault.Error{Code: fault.CodeRestoreFailed, Op: "restore", Msg: "activate a TCP connection", Err: err}
		}
	}
	t.tcp = nil
	return nil
}

// abortTCP drops the connections not activated: they vanish silently.
func (t *tree) abortTCP() {
	for _, p := range t.tcp {
		p.Abort()
	}
	t.tcp = nil
}
