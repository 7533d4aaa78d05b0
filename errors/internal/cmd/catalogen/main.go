// Command catalogen writes errors/catalog_gen.go from errors/data.
//
// It is run by go generate in the errors directory:
//
//	//go:generate go run ./internal/cmd/catalogen
//
// Flags: -data, the data directory (default "data"); -out, the output file
// (default "catalog_gen.go").
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/streamsession/streamsession/errors/internal/catalogen"
)

func main() {
	data := flag.String("data", "data", "directory holding the catalog TSV files")
	out := flag.String("out", "catalog_gen.go", "file to write")
	flag.Parse()
	src, err := catalogen.Generate(os.DirFS(*data))
	if err != nil {
		fmt.Fprintln(os.Stderr, "catalogen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "catalogen:", err)
		os.Exit(1)
	}
}
