// Command printenv is the static program of the VS Code tests (built with
// CGO_ENABLED=0, so remocal must run it through its wrapper): it prints its
// arguments, API_TOKEN and the app pod's config file, which the tests find
// in the debug console. printenv.c prints the same as a dynamic program.
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	fmt.Printf("args=%s\n", strings.Join(os.Args[1:], " "))
	if v, ok := os.LookupEnv("API_TOKEN"); ok {
		fmt.Printf("API_TOKEN=%s\n", v)
	} else {
		fmt.Println("API_TOKEN=<unset>")
	}
	if b, err := os.ReadFile("/etc/inventory/config.json"); err != nil {
		fmt.Printf("CONFIG=<error: %v>\n", err)
	} else {
		fmt.Printf("CONFIG=%s\n", b)
	}
}
