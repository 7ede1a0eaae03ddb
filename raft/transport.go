package raft

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
)

// Every node-to-node connection starts with a handshake that proves the
// dialer holds the cluster secret, then names its purpose: Raft RPCs or
// write forwarding. One listener (the Raft address) carries both, so one
// TLS setup and one secret protect all node-to-node traffic.
const (
	purposeRaft    byte = 'R'
	purposeForward byte = 'F'
	handshakeMagic      = "CHRN1"
	handshakeLen        = len(handshakeMagic) + 32 + sha256.Size + 1
	handshakeWait       = 5 * time.Second
)

// ErrBadHandshake is a connection that did not prove the cluster secret.
var ErrBadHandshake = errors.New("raft: peer failed the cluster handshake")

// streamLayer is a hraft.StreamLayer over TCP (optionally TLS) that
// authenticates peers and splits connections by purpose.
type streamLayer struct {
	ln        net.Listener
	advertise net.Addr
	secret    []byte
	serverTLS *tls.Config // nil: plain TCP
	clientTLS *tls.Config
	logger    *slog.Logger

	raftConns    chan net.Conn
	forwardConns chan net.Conn
	closeOnce    sync.Once
	closed       chan struct{}
}

var _ hraft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(bind string, advertise string, secret []byte, serverTLS, clientTLS *tls.Config, logger *slog.Logger) (*streamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", bind, err)
	}
	adv := ln.Addr()
	if advertise != "" {
		if adv, err = net.ResolveTCPAddr("tcp", advertise); err != nil {
			ln.Close()
			return nil, fmt.Errorf("raft advertise address %q: %w", advertise, err)
		}
	} else if tcp, ok := adv.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("raft address %s is not advertisable; set the raft advertise address", bind)
	}
	s := &streamLayer{
		ln: ln, advertise: adv, secret: secret, serverTLS: serverTLS, clientTLS: clientTLS, logger: logger,
		raftConns: make(chan net.Conn), forwardConns: make(chan net.Conn), closed: make(chan struct{}),
	}
	go s.acceptLoop()
	return s, nil
}

func (s *streamLayer) acceptLoop() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			s.logger.Warn("raft accept failed", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go s.admit(conn)
	}
}

// admit runs the handshake and hands the connection to its consumer.
func (s *streamLayer) admit(conn net.Conn) {
	if s.serverTLS != nil {
		conn = tls.Server(conn, s.serverTLS)
	}
	conn.SetDeadline(time.Now().Add(handshakeWait))
	purpose, err := s.readHandshake(conn)
	if err != nil {
		s.logger.Warn("rejected node connection", "remote", conn.RemoteAddr().String(), "err", err)
		conn.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	ch := s.raftConns
	if purpose == purposeForward {
		ch = s.forwardConns
	}
	select {
	case ch <- conn:
	case <-s.closed:
		conn.Close()
	}
}

func (s *streamLayer) readHandshake(conn net.Conn) (byte, error) {
	buf := make([]byte, handshakeLen)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return 0, fmt.Errorf("read handshake: %w", err)
	}
	if string(buf[:len(handshakeMagic)]) != handshakeMagic {
		return 0, ErrBadHandshake
	}
	nonce := buf[len(handshakeMagic) : len(handshakeMagic)+32]
	mac := buf[len(handshakeMagic)+32 : len(buf)-1]
	purpose := buf[len(buf)-1]
	if !hmac.Equal(mac, s.mac(nonce, purpose)) {
		return 0, ErrBadHandshake
	}
	if purpose != purposeRaft && purpose != purposeForward {
		return 0, fmt.Errorf("unknown connection purpose %q", purpose)
	}
	return purpose, nil
}

func (s *streamLayer) mac(nonce []byte, purpose byte) []byte {
	h := hmac.New(sha256.New, s.secret)
	h.Write(nonce)
	h.Write([]byte{purpose})
	return h.Sum(nil)
}

// dial connects to a peer for a purpose.
func (s *streamLayer) dial(address string, timeout time.Duration, purpose byte) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.Dial("tcp", address)
	if err != nil {
		return nil, err
	}
	if s.clientTLS != nil {
		tc := tls.Client(conn, s.clientTLS)
		tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", address, err)
		}
		tc.SetDeadline(time.Time{})
		conn = tc
	}
	hs := make([]byte, 0, handshakeLen)
	hs = append(hs, handshakeMagic...)
	nonce := make([]byte, 32)
	_, _ = rand.Read(nonce)
	hs = append(hs, nonce...)
	hs = append(hs, s.mac(nonce, purpose)...)
	hs = append(hs, purpose)
	conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(hs); err != nil {
		conn.Close()
		return nil, fmt.Errorf("handshake with %s: %w", address, err)
	}
	conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

// Dial is for hashicorp/raft.
func (s *streamLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.dial(string(address), timeout, purposeRaft)
}

// Accept is for hashicorp/raft: Raft connections only.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.raftConns:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

// acceptForward returns the next forwarding connection.
func (s *streamLayer) acceptForward() (net.Conn, error) {
	select {
	case c := <-s.forwardConns:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

func (s *streamLayer) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		err = s.ln.Close()
	})
	return err
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }
