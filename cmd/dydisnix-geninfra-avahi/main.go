// Command dydisnix-geninfra-avahi is dydisnix-geninfra-mdns under the name
// of the original Dynamic Disnix tool, for scripts that call it.
package main

import (
	"os"

	"github.com/dydisnix/dydisnix/discovery/cli"
)

func main() {
	os.Exit(cli.Geninfra("dydisnix-geninfra-avahi", os.Args[1:], os.Stdout, os.Stderr))
}
