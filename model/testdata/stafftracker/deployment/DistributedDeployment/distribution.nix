{infrastructure}:

{
  rooms = [ infrastructure.test2 ];
  staff = [ infrastructure.test2 ];
  zipcodes = [ infrastructure.test2 ];
  RoomService = [ infrastructure.test1 ];
  StaffService = [ infrastructure.test1 ];
  ZipcodeService = {
    targets = [
      { target = infrastructure.test1; container = "tomcat-webapplication"; }
    ];
  };
  StaffTracker = [ infrastructure.test1 infrastructure.test2 ];
}
