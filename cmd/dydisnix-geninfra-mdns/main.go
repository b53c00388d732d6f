// Command dydisnix-geninfra-mdns prints the infrastructure model of the
// machines that announce themselves over mDNS. See docs/discovery.md.
package main

import (
	"os"

	"github.com/dydisnix/dydisnix/discovery/cli"
)

func main() {
	os.Exit(cli.Geninfra("dydisnix-geninfra-mdns", os.Args[1:], os.Stdout, os.Stderr))
}
