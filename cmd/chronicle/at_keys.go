package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"chronicle/projections/audit"
)

// printKeys prints a "keys" answer: one line per device, then the
// cross-signing keys.
func printKeys(tw *tabwriter.Writer, ans *audit.Answer) {
	fmt.Fprintln(tw, "DEVICE\tIDENTITY KEYS\tONE-TIME KEYS\tFALLBACK KEYS")
	for _, d := range ans.Keys {
		ident := "-"
		if d.Identity != nil {
			ident = "uploaded"
		}
		var counts []string
		for _, alg := range slices.Sorted(maps.Keys(d.OneTimeKeyCounts)) {
			counts = append(counts, fmt.Sprintf("%s=%d", alg, d.OneTimeKeyCounts[alg]))
		}
		var fallback []string
		for _, fk := range d.FallbackKeys {
			state := "unused"
			if fk.Used {
				state = "used"
			}
			fallback = append(fallback, fmt.Sprintf("%s:%s (%s)", fk.Algorithm, fk.KeyID, state))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.DeviceID, ident, dash(strings.Join(counts, " ")), dash(strings.Join(fallback, " ")))
	}
	for _, usage := range slices.Sorted(maps.Keys(ans.CrossSigning)) {
		fmt.Fprintf(tw, "cross-signing %s\t%s\t\t\n", usage, ans.CrossSigning[usage])
	}
}
