import { runService } from '../../../platform/service';
import { startGateway } from './app';
import { readConfig, SERVICE } from './config';

runService(SERVICE, (log) => startGateway(readConfig(), log));
