{ system, pkgs }:

let
  callPackage = pkgs.lib.callPackageWith (pkgs // self);

  self = {
    rooms = callPackage ../pkgs/databases/rooms { };
    staff = callPackage ../pkgs/databases/staff { };
    zipcodes = callPackage ../pkgs/databases/zipcodes { };
    RoomService = callPackage ../pkgs/webservices/RoomService { };
    StaffService = callPackage ../pkgs/webservices/StaffService { };
    ZipcodeService = callPackage ../pkgs/webservices/ZipcodeService { };
    StaffTracker = callPackage ../pkgs/webapps/StaffTracker { };
  };
in
self
