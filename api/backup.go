package api

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	rlog "chronicle/log"
	"chronicle/raft/machine"
)

// Backup response headers. The log position and hash are the record log's
// head in the streamed snapshot; the SHA-256 trailer covers the whole body
// and is only sent once the stream was written completely.
const (
	HeaderLogPosition   = "X-Chronicle-Log-Position"
	HeaderLogHash       = "X-Chronicle-Log-Hash"
	HeaderServerName    = "X-Chronicle-Server-Name"
	HeaderNodeID        = "X-Chronicle-Node-Id"
	TrailerBackupSHA256 = "X-Chronicle-Backup-Sha256"
)

// snapshotter is what a State must also be to serve backups;
// *machine.Machine is one.
type snapshotter interface {
	Snapshot() (*pebble.Snapshot, error)
}

// backup streams a consistent copy of the whole state store: one Pebble
// snapshot, so the record log, every projection and the head it reports
// are all as of one log position, while the node keeps taking writes.
// The body is machine.WriteSnapshot's checksummed format.
//
// A failure after the first byte cannot become an error response any
// more: the connection is aborted instead, and the trailer that carries
// the body's SHA-256 is never sent, so a client cannot mistake a cut
// stream for a backup.
func (s *Server) backup(c echo.Context) error {
	sn, ok := s.state.(snapshotter)
	if !ok {
		return errorf(404, "M_UNRECOGNIZED", "This server cannot stream backups")
	}
	snap, err := sn.Snapshot()
	if err != nil {
		return err
	}
	defer snap.Close()
	head, err := rlog.ReadHead(snap)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMEOctetStream)
	h.Set("Content-Disposition", `attachment; filename="state.snap"`)
	h.Set("Cache-Control", "no-store")
	h.Set(HeaderLogPosition, strconv.FormatUint(head.Seq, 10))
	h.Set(HeaderLogHash, head.Hash.String())
	if s.cfg.ServerName != "" {
		h.Set(HeaderServerName, s.cfg.ServerName)
	}
	if s.cfg.Cluster != nil {
		if st, err := s.cfg.Cluster.Status(); err == nil {
			h.Set(HeaderNodeID, st.NodeID)
		}
	}
	h.Set("Trailer", TrailerBackupSHA256)
	c.Response().WriteHeader(http.StatusOK)

	sum := sha256.New()
	if err := machine.WriteSnapshot(snap, io.MultiWriter(c.Response(), sum)); err != nil {
		s.logger.Error("backup stream failed", "log_position", head.Seq, "err", err)
		panic(http.ErrAbortHandler)
	}
	h.Set(TrailerBackupSHA256, hex.EncodeToString(sum.Sum(nil)))
	return nil
}
