package api

import (
	"net/http"
	"net/http/pprof"
	"strings"
)

// servePprof serves net/http/pprof under /_chronicle/v1/debug/pprof/.
func servePprof(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/_chronicle/v1/debug/pprof/")
	switch name {
	case "", "index":
		pprof.Index(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "trace":
		pprof.Trace(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	default:
		pprof.Handler(name).ServeHTTP(w, r)
	}
}
