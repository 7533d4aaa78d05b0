// Command guardjs writes js/guard/index.js, the browser guard, from the
// server's command policy (see package internal/jsgen). It runs from
// go generate in js/guard:
//
//	//go:generate go run ../../internal/cmd/guardjs
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/streamsession/streamsession/internal/jsgen"
)

func main() {
	out := flag.String("o", "index.js", "the file to write")
	flag.Parse()
	src, err := jsgen.Render()
	if err == nil {
		err = os.WriteFile(*out, src, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "guardjs:", err)
		os.Exit(1)
	}
}
