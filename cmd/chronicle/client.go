package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// defaultNode is where the operator commands look without --node: the
// embedded default config's listen address.
const defaultNode = "http://127.0.0.1:8008"

// operatorFlags are the flags every operator command (cluster, backup)
// shares: which node to ask, and the bearer token to ask with.
type operatorFlags struct {
	node, secret, data string
	timeout            time.Duration
}

func (o *operatorFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.node, "node", defaultNode, "base URL of the node's client API")
	fs.StringVar(&o.secret, "secret", "", "cluster secret (or a server admin's access token); default <--data>/cluster-secret when --data is given, else $"+secretEnv)
	fs.StringVar(&o.data, "data", "", "a node's data directory, to read the cluster secret from <DIR>/cluster-secret")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long to wait for the node to answer")
}

// client builds the operator client. The secret comes from --secret, then
// <--data>/cluster-secret when --data is given (an explicit flag beats the
// environment), then $CHRONICLE_CLUSTER_SECRET.
func (o *operatorFlags) client() (*opClient, error) {
	base := strings.TrimRight(o.node, "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--node %q is not an http(s) URL such as %s", o.node, defaultNode)
	}
	secret := o.secret
	if secret == "" && o.data != "" {
		path := filepath.Join(o.data, "cluster-secret")
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read the cluster secret: %w", err)
		}
		secret = strings.TrimSpace(string(b))
		if secret == "" {
			return nil, fmt.Errorf("%s is empty", path)
		}
	}
	if secret == "" {
		secret = os.Getenv(secretEnv)
	}
	if secret == "" {
		return nil, fmt.Errorf("no cluster secret: give --secret, --data DIR (to read DIR/cluster-secret) or set $%s", secretEnv)
	}
	return &opClient{base: base, secret: secret, timeout: o.timeout, http: &http.Client{}}, nil
}

// opClient calls a node's operator API (/_chronicle/v1) with the cluster
// secret as the bearer token.
type opClient struct {
	base    string
	secret  string
	timeout time.Duration // per JSON call; streams are bounded by ctx only
	http    *http.Client
}

// APIError is an error answer from the node: its HTTP status and the
// Matrix-style {"errcode","error"} body.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code == "" {
		return fmt.Sprintf("the node answered HTTP %d: %s", e.Status, msg)
	}
	hint := ""
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		hint = " (check the cluster secret)"
	}
	return fmt.Sprintf("the node refused (HTTP %d %s): %s%s", e.Status, e.Code, msg, hint)
}

// apiError reads a non-2xx answer into an *APIError.
func apiError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &APIError{Status: resp.StatusCode}
	var m struct {
		Code    string `json:"errcode"`
		Message string `json:"error"`
	}
	if json.Unmarshal(body, &m) == nil && m.Code != "" {
		e.Code, e.Message = m.Code, m.Message
	} else {
		e.Message = strings.TrimSpace(string(body))
	}
	return e
}

// request sends one request under /_chronicle/v1 and returns the response
// when it is 2xx; any other answer becomes an *APIError.
func (c *opClient) request(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/_chronicle/v1"+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.secret)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot reach %s: %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, apiError(resp)
	}
	return resp, nil
}

// call sends a JSON request and returns the raw JSON answer, decoding it
// into out when out is not nil.
func (c *opClient) call(ctx context.Context, method, path string, body, out any) (json.RawMessage, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer of %s %s: %w", method, path, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("decode the answer of %s %s: %w", method, path, err)
		}
	}
	return raw, nil
}

// parseArgs parses flags that may come before, between or after the
// positional arguments (`cluster remove n3 --node URL`), which the flag
// package alone stops at. A lone "--" ends the flags.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// newFlagSet is a flag set whose usage goes to w, starting with usage.
func newFlagSet(name, usage string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "usage: %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// helpOK turns -h into a successful exit: the usage has been printed.
func helpOK(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
