package main

import (
	"fmt"
	"maps"
	"slices"
	"text/tabwriter"

	"chronicle/projections/audit"
)

// printProfile prints a "profile" answer: one line per field, its value
// as JSON.
func printProfile(tw *tabwriter.Writer, ans *audit.Answer) {
	fmt.Fprintln(tw, "FIELD\tVALUE")
	if len(ans.Profile) == 0 {
		fmt.Fprintln(tw, "(none)\t")
	}
	for _, key := range slices.Sorted(maps.Keys(ans.Profile)) {
		fmt.Fprintf(tw, "%s\t%s\n", key, ans.Profile[key])
	}
}
