package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/adapt"
	"github.com/dydisnix/dydisnix/ha"
	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/rollout"
)

func (o *options) addHAFlags(f *pflag.FlagSet) {
	cli.SecondsVarP(f, &o.leaderTTL, "leader-ttl", "", ha.DefaultTTL, "with --registry: the coordinators' election session TTL (whole seconds): a leader that cannot renew it for this long stops deploying and a standby takes over")
}

func (o *options) checkHA() error {
	if !o.infra.Registry.Enabled() {
		return nil
	}
	if o.pass.Deployer != "agent" {
		return cli.Usagef("--registry: the coordinators elect a leader and share their record in etcd, which needs --deployer agent")
	}
	if o.leaderTTL < time.Second {
		return cli.Usagef("--leader-ttl: expected at least one second")
	}
	return nil
}

// elect starts the election among the coordinators of the --registry fleet
// (nil without --registry) and configures the pass for it; stop resigns.
func (o *options) elect(log *zap.Logger) (el *ha.Elector, stop func(), err error) {
	if !o.infra.Registry.Enabled() {
		return nil, func() {}, nil
	}
	client, err := o.infra.Registry.Client()
	if err != nil {
		return nil, nil, err
	}
	el, err = ha.New(ha.Config{Client: client, Prefix: o.infra.Registry.Key("coordinator"),
		Name: rollout.LockOwner(o.pass.StateDir), TTL: o.leaderTTL, Logger: log})
	if err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("--registry: %w", err)
	}
	el.Configure(&o.pass)
	// The election outlives the signal: a running deploy finishes (or
	// rolls back) as leader, then the coordinator resigns.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = el.Run(ctx) }()
	return el, func() { cancel(); <-done; client.Close() }, nil
}

// lead makes the loop deploy only while this coordinator leads.
func lead(cfg *adapt.Config, el *ha.Elector, pass *rollout.Pass) {
	if el == nil {
		return
	}
	hp := el.NewPass(pass)
	cfg.Pass, cfg.Leadership = hp, el
	if cfg.Snapshotter != nil {
		cfg.Snapshotter = hp
	}
}
