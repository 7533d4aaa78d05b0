// Command streaming serves the streamsession demo.
package main

import (
	"fmt"

	sserrors "github.com/streamsession/streamsession/errors"
)

func main() {
	fmt.Println("streamsession demo:", sserrors.ErrSessionNotFound.Message)
}
