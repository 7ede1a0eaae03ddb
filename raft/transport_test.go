package raft

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"chronicle/raft/machine"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testPKI is a CA and a function issuing node certificates signed by it.
type testPKI struct {
	pool *x509.CertPool
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chronicle test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{pool: pool, ca: ca, key: key}
}

// configs returns server and client TLS configs for one node whose
// certificate signer issued, trusting p's CA.
func (p *testPKI) configs(t *testing.T, name string, signer *testPKI) (*tls.Config, *tls.Config) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer.ca, &key.PublicKey, signer.key)
	if err != nil {
		t.Fatal(err)
	}
	return NewTLSConfigs(p.pool, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key})
}

func TestHandshakeRefusesWrongSecret(t *testing.T) {
	good, err := newStreamLayer("127.0.0.1:0", "", []byte("right"), nil, nil, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	bad, err := newStreamLayer("127.0.0.1:0", "", []byte("wrong"), nil, nil, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()

	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := good.Accept(); err == nil {
			accepted <- c
		}
	}()
	conn, err := bad.Dial(hraft.ServerAddress(good.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The listener closes a connection that fails the handshake: reads end.
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection with the wrong secret stayed open and sent data")
	}
	select {
	case <-accepted:
		t.Fatal("raft accepted a connection with the wrong secret")
	case <-time.After(100 * time.Millisecond):
	}

	// The right secret is admitted.
	peer, err := newStreamLayer("127.0.0.1:0", "", []byte("right"), nil, nil, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c2, err := peer.Dial(hraft.ServerAddress(good.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(2 * time.Second):
		t.Fatal("connection with the right secret was not admitted")
	}
}

// TestTLSClusterReplicatesAndRefusesStrangers runs two nodes over mutual
// TLS: writes replicate and forward; a node whose certificate comes from
// another CA cannot connect even with the right secret.
func TestTLSClusterReplicatesAndRefusesStrangers(t *testing.T) {
	pki := newTestPKI(t)
	secret := []byte("s")
	open := func(id string, join bool, p, signer *testPKI) *Node {
		st, ct := p.configs(t, id, signer)
		n, err := Open(Config{NodeID: id, DataDir: t.TempDir(), ServerName: "localhost", ClusterSecret: secret,
			ServerTLS: st, ClientTLS: ct, Join: join, Fast: true, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	n1 := open("n1", false, pki, pki)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := n1.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	n2 := open("n2", true, pki, pki)
	if err := n1.Join(ctx, &JoinRequest{NodeID: "n2", RaftAddr: n2.RaftAddr(), Voter: true}); err != nil {
		t.Fatal(err)
	}
	if err := n2.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	// A write through the follower is forwarded over TLS and readable there.
	cmd, _ := machine.NewCommand(machine.CmdRegister, 1, "", "", &machine.Register{UserID: "@tls:localhost", DeviceID: "D"})
	res, err := n2.Submit(ctx, cmd)
	if err != nil {
		t.Fatalf("submit through TLS follower: %v", err)
	}
	if got := n2.Machine().Log().Head().Seq; got < res.Seq {
		t.Fatalf("follower head %d after its own write at %d", got, res.Seq)
	}

	// A node with a certificate from another CA is refused at the TLS layer.
	other := newTestPKI(t)
	st, ct := pki.configs(t, "n3", other)
	stranger, err := newStreamLayer("127.0.0.1:0", "", secret, st, ct, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if c, err := stranger.dial(n1.RaftAddr(), time.Second, purposeForward); err == nil {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, rerr := c.Read(make([]byte, 1))
		c.Close()
		if rerr == nil || errors.Is(rerr, io.ErrNoProgress) {
			t.Fatal("a certificate from another CA was admitted")
		}
	}
}
