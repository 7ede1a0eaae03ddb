package api

import (
	"strconv"
	"strings"
)

// Tokens are log positions: "s<seq>" means "after every record up to seq".
// The same token means the same thing on every node.
func formatToken(seq uint64) string { return "s" + strconv.FormatUint(seq, 10) }

func parseToken(tok string) (uint64, bool) {
	rest, ok := strings.CutPrefix(tok, "s")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil
}
