// Command readmediagram writes the session machine's Mermaid diagram
// (fsm.Mermaid) into README.md between the markers
// <!-- fsm-diagram:begin --> and <!-- fsm-diagram:end -->, as a ```mermaid
// block, and changes nothing else in the file. It runs from the module root
// through go generate (generate.go):
//
//	go generate
//
// Flags: -file names another file; -check writes nothing and exits 1 when
// the file is out of date. The file is written only when its content
// changes.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/streamsession/streamsession/internal/cmd/readmediagram/readme"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("readmediagram", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "README.md", "the file to update")
	check := fs.Bool("check", false, "write nothing; exit 1 when the file is out of date")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	old, err := os.ReadFile(*file)
	if err != nil {
		fmt.Fprintln(stderr, "readmediagram:", err)
		return 1
	}
	updated, err := readme.Splice(old, readme.Block())
	if err != nil {
		fmt.Fprintf(stderr, "readmediagram: %s: %v\n", *file, err)
		return 1
	}
	switch {
	case bytes.Equal(old, updated):
		return 0
	case *check:
		fmt.Fprintf(stderr, "readmediagram: %s: the state diagram is out of date: run go generate\n", *file)
		return 1
	}
	// WriteFile keeps the mode of an existing file.
	if err := os.WriteFile(*file, updated, 0o644); err != nil {
		fmt.Fprintln(stderr, "readmediagram:", err)
		return 1
	}
	fmt.Fprintf(stdout, "readmediagram: %s: state diagram updated\n", *file)
	return 0
}
