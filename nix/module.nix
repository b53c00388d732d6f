# NixOS module: services.dydisnix.{agent,selfAdapt,publisher}, the units of
# dist/systemd/ as NixOS services (same flags, same credentials, same
# hardening; the settings of /etc/default/<unit> become options). The files
# default to the names the units and the README use: /etc/dydisnix/agent.token
# (handed over with LoadCredential=) and /etc/dydisnix/properties.yaml.
#
# go test ./dist (TestNixOSModuleWithStubModuleSystem) evaluates this module
# with nix-instantiate against a stub of the module system and compares the
# services it defines with the unit files.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption mkIf mkMerge types concatStringsSep concatMap;

  top = config.services.dydisnix;

  # A command-line word: systemd splits ExecStart at white space, expands
  # "$" and "%" and interprets quotes and backslashes, none of which a value
  # may hold.
  word = types.strMatching "[^[:space:]\"'\\\\$%;]+";

  tokenFileOption = mkOption {
    type = word;
    default = "/etc/dydisnix/agent.token";
    description = "File holding the agents' bearer token (readable by root only); handed to the service with LoadCredential=agent.token.";
  };

  tlsDirOption = who: mkOption {
    type = word;
    default = "/etc/dydisnix/tls";
    description = "Directory of the fleet's certificates (dydisnix-tls): ca.pem, ${who}.pem and ${who}-key.pem (readable by root only; handed to the service with LoadCredential=tls-ca, tls-cert, tls-key).";
  };

  interfacesOption = what: mkOption {
    type = types.listOf word;
    example = [ "eth0" ];
    description = "Network interfaces to ${what} on.";
  };

  extraArgsOption = mkOption {
    type = types.listOf word;
    default = [ ];
    example = [ "--log-level" "debug" ];
    description = "Further command-line arguments (the units' EXTRA_ARGS).";
  };

  propertiesFileOption = mkOption {
    type = word;
    default = "/etc/dydisnix/properties.yaml";
    description = "This machine's properties (JSON, YAML or Nix; the shape of one infrastructure target).";
  };

  # Settings every unit shares: ordering after the network and documentation.
  common = {
    documentation = [ "https://github.com/dydisnix/dydisnix/blob/main/docs/adapt.md" ];
    wants = [ "network-online.target" ];
    wantedBy = [ "multi-user.target" ];
  };

  execStart = command: args: concatStringsSep " " ([ "${top.package}/bin/${command}" ] ++ args);

  flagEach = flag: values: concatMap (v: [ flag v ]) values;
in
{
  options.services.dydisnix = {
    package = mkOption {
      type = types.package;
      default = pkgs.dydisnix or (pkgs.callPackage ./package.nix { });
      defaultText = lib.literalExpression "pkgs.dydisnix";
      description = "The dydisnix package whose commands the services run.";
    };

    agent = {
      enable = mkEnableOption "the dydisnix deployment agent of this target";
      listen = mkOption {
        type = word;
        default = ":7420";
        description = "Address the agent listens on (--listen).";
      };
      interfaces = interfacesOption "announce this machine (with the agent's URL) over mDNS";
      tokenFile = tokenFileOption;
      tlsDir = tlsDirOption "agent";
      propertiesFile = propertiesFileOption;
      drainTimeout = mkOption {
        type = word;
        default = "2m";
        description = "How long a drain waits for the coordinator to move the services away (--drain-timeout); the stop timeout is 180 s, keep it above this plus 10 s per service.";
      };
      extraArgs = extraArgsOption;
    };

    selfAdapt = {
      enable = mkEnableOption "the dydisnix self-adaptive deployment loop (the coordinator)";
      services = mkOption {
        type = word;
        example = "/etc/dydisnix/services.nix";
        description = "The services model (-s).";
      };
      qos = mkOption {
        type = word;
        default = "builtin:stable-by-type-memory";
        description = "The QoS policy: a file or builtin:NAME (-q).";
      };
      augment = mkOption {
        type = types.nullOr word;
        default = null;
        example = "/etc/dydisnix/augment.yaml";
        description = "The augmentation model (-a/--augment), if any.";
      };
      interfaces = interfacesOption "browse mDNS";
      tokenFile = tokenFileOption;
      tlsDir = tlsDirOption "coordinator";
      statusListen = mkOption {
        type = word;
        default = "127.0.0.1:9470";
        description = "Address of the status page, /status and /metrics (--status-listen).";
      };
      shutdownTimeout = mkOption {
        type = word;
        default = "2m";
        description = "How long a running deploy may go on after SIGTERM (--shutdown-timeout); the stop timeout is 180 s.";
      };
      extraArgs = extraArgsOption;
    };

    publisher = {
      enable = mkEnableOption "the dydisnix mDNS publisher (not needed when the agent publishes)";
      interfaces = interfacesOption "announce this machine";
      propertiesFile = propertiesFileOption;
      extraArgs = extraArgsOption;
    };
  };

  config = mkMerge [
    (mkIf top.agent.enable {
      systemd.services.dydisnix-agent = common // {
        description = "dydisnix deployment agent (target)";
        after = [ "network-online.target" ];
        before = [ "dydisnix-publishinfra.service" ];
        serviceConfig = {
          Type = "notify";
          NotifyAccess = "main";
          LoadCredential = [ "agent.token:${top.agent.tokenFile}" "tls-ca:${top.agent.tlsDir}/ca.pem" "tls-cert:${top.agent.tlsDir}/agent.pem" "tls-key:${top.agent.tlsDir}/agent-key.pem" ];
          StateDirectory = "dydisnix-agent";
          StateDirectoryMode = "0700";
          ExecStart = execStart "dydisnix-agent" ([
            "--listen" top.agent.listen
            "--state-dir" "\${STATE_DIRECTORY}"
            "--token-file" "\${CREDENTIALS_DIRECTORY}/agent.token"
            "--tls-cert" "\${CREDENTIALS_DIRECTORY}/tls-cert" "--tls-key" "\${CREDENTIALS_DIRECTORY}/tls-key"
            "--client-ca" "\${CREDENTIALS_DIRECTORY}/tls-ca"
            "--publish" "--properties" top.agent.propertiesFile
          ] ++ flagEach "--interface" top.agent.interfaces ++ [
            "--drain-timeout" top.agent.drainTimeout "--log-format" "json"
          ] ++ top.agent.extraArgs);
          KillMode = "mixed";
          KillSignal = "SIGTERM";
          TimeoutStopSec = "180";
          Restart = "on-failure";
          RestartSec = "2s";
          # As far as an agent that starts services as root allows; see
          # dist/systemd/dydisnix-agent.service.
          UMask = "0022";
          NoNewPrivileges = "yes";
          ProtectKernelTunables = "yes";
          ProtectKernelModules = "yes";
          ProtectKernelLogs = "yes";
          ProtectControlGroups = "yes";
          ProtectClock = "yes";
          ProtectHostname = "yes";
          ProtectHome = "read-only";
          PrivateTmp = "yes";
          RestrictAddressFamilies = "AF_UNIX AF_INET AF_INET6 AF_NETLINK";
          RestrictRealtime = "yes";
          RestrictSUIDSGID = "yes";
          LockPersonality = "yes";
          KeyringMode = "private";
          SystemCallArchitectures = "native";
          CapabilityBoundingSet = "~CAP_SYS_MODULE CAP_SYS_RAWIO CAP_SYS_BOOT CAP_SYS_TIME CAP_MKNOD CAP_SYS_PTRACE CAP_SYSLOG CAP_WAKE_ALARM CAP_BLOCK_SUSPEND CAP_MAC_ADMIN CAP_MAC_OVERRIDE CAP_AUDIT_CONTROL CAP_AUDIT_READ CAP_AUDIT_WRITE CAP_LINUX_IMMUTABLE CAP_SYS_PACCT CAP_SYS_TTY_CONFIG CAP_LEASE";
          SystemCallFilter = "~@clock @cpu-emulation @debug @module @obsolete @raw-io @reboot @swap";
          SystemCallErrorNumber = "EPERM";
        };
      };
    })

    (mkIf top.selfAdapt.enable {
      # The coordinator's system user (dist/sysusers.d/dydisnix.conf).
      users.users.dydisnix = {
        isSystemUser = true;
        group = "dydisnix";
        home = "/var/lib/dydisnix";
        description = "dydisnix coordinator";
      };
      users.groups.dydisnix = { };
      systemd.services.dydisnix-self-adapt = common // {
        description = "dydisnix self-adaptive deployment loop (coordinator)";
        after = [ "network-online.target" ];
        # .nix models are evaluated with nix-instantiate.
        path = [ config.nix.package ];
        serviceConfig = {
          Type = "notify";
          NotifyAccess = "main";
          LoadCredential = [ "agent.token:${top.selfAdapt.tokenFile}" "tls-ca:${top.selfAdapt.tlsDir}/ca.pem" "tls-cert:${top.selfAdapt.tlsDir}/coordinator.pem" "tls-key:${top.selfAdapt.tlsDir}/coordinator-key.pem" ];
          StateDirectory = "dydisnix";
          StateDirectoryMode = "0700";
          ExecStart = execStart "dydisnix-self-adapt" ([
            "-s" top.selfAdapt.services "-q" top.selfAdapt.qos
          ] ++ flagEach "--mdns-interface" top.selfAdapt.interfaces ++ [
            "--agent-token-file" "\${CREDENTIALS_DIRECTORY}/agent.token"
            "--agent-ca-file" "\${CREDENTIALS_DIRECTORY}/tls-ca"
            "--tls-cert" "\${CREDENTIALS_DIRECTORY}/tls-cert" "--tls-key" "\${CREDENTIALS_DIRECTORY}/tls-key"
            "--state-dir" "\${STATE_DIRECTORY}"
            "--snapshot" "--reconstruct"
            "--status-listen" top.selfAdapt.statusListen "--log-format" "json"
            "--shutdown-timeout" top.selfAdapt.shutdownTimeout
          ] ++ lib.optionals (top.selfAdapt.augment != null) [ "--augment" top.selfAdapt.augment ]
            ++ top.selfAdapt.extraArgs);
          KillMode = "mixed";
          KillSignal = "SIGTERM";
          TimeoutStopSec = "180";
          Restart = "on-failure";
          RestartSec = "5s";
          WatchdogSec = "60s";
          User = "dydisnix";
          Group = "dydisnix";
          CacheDirectory = "dydisnix";
          Environment = "HOME=%S/dydisnix XDG_CACHE_HOME=%C/dydisnix";
          UMask = "0077";
          CapabilityBoundingSet = "";
          AmbientCapabilities = "";
          NoNewPrivileges = "yes";
          ProtectSystem = "strict";
          ProtectHome = "yes";
          PrivateTmp = "yes";
          PrivateDevices = "yes";
          PrivateUsers = "yes";
          PrivateMounts = "yes";
          DevicePolicy = "closed";
          ProtectKernelTunables = "yes";
          ProtectKernelModules = "yes";
          ProtectKernelLogs = "yes";
          ProtectControlGroups = "yes";
          ProtectClock = "yes";
          ProtectHostname = "yes";
          ProtectProc = "invisible";
          ProcSubset = "pid";
          RestrictAddressFamilies = "AF_UNIX AF_INET AF_INET6 AF_NETLINK";
          RestrictNamespaces = "yes";
          RestrictRealtime = "yes";
          RestrictSUIDSGID = "yes";
          LockPersonality = "yes";
          MemoryDenyWriteExecute = "yes";
          RemoveIPC = "yes";
          KeyringMode = "private";
          SystemCallArchitectures = "native";
          SystemCallFilter = [ "@system-service" "~@privileged @resources" ];
          SystemCallErrorNumber = "EPERM";
        };
      };
    })

    (mkIf top.publisher.enable {
      systemd.services.dydisnix-publishinfra = common // {
        description = "dydisnix mDNS publisher of this machine's properties";
        after = [ "network-online.target" "dydisnix-agent.service" ];
        serviceConfig = {
          Type = "simple";
          ExecStart = execStart "dydisnix-publishinfra"
            (flagEach "--interface" top.publisher.interfaces
              ++ [ "--properties" top.publisher.propertiesFile ]
              ++ top.publisher.extraArgs);
          KillMode = "mixed";
          TimeoutStopSec = "10";
          Restart = "on-failure";
          RestartSec = "2s";
          DynamicUser = "yes";
          UMask = "0077";
          CapabilityBoundingSet = "";
          AmbientCapabilities = "";
          NoNewPrivileges = "yes";
          ProtectSystem = "strict";
          ProtectHome = "yes";
          PrivateTmp = "yes";
          PrivateDevices = "yes";
          PrivateUsers = "yes";
          PrivateMounts = "yes";
          DevicePolicy = "closed";
          ProtectKernelTunables = "yes";
          ProtectKernelModules = "yes";
          ProtectKernelLogs = "yes";
          ProtectControlGroups = "yes";
          ProtectClock = "yes";
          ProtectHostname = "yes";
          ProtectProc = "invisible";
          ProcSubset = "pid";
          RestrictAddressFamilies = "AF_UNIX AF_INET AF_INET6 AF_NETLINK";
          RestrictNamespaces = "yes";
          RestrictRealtime = "yes";
          RestrictSUIDSGID = "yes";
          LockPersonality = "yes";
          MemoryDenyWriteExecute = "yes";
          RemoveIPC = "yes";
          KeyringMode = "private";
          SystemCallArchitectures = "native";
          SystemCallFilter = [ "@system-service" "~@privileged @resources" ];
          SystemCallErrorNumber = "EPERM";
        };
      };
    })
  ];
}
