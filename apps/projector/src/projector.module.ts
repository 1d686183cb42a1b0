import { Module, type DynamicModule } from '@nestjs/common';
import { EventStoreModule } from '#eventstore';
import { DatabaseModule } from '#persistence';
import { LOGGER, type Logger } from '#platform';
import type { ProjectorConfig } from './config.js';
import { ProjectorCommands } from './projector.commands.js';
import { PROJECTOR_CONFIG, ProjectorService } from './projector.service.js';

@Module({})
export class ProjectorModule {
  static forRoot(config: ProjectorConfig, logger: Logger): DynamicModule {
    return {
      module: ProjectorModule,
      imports: [EventStoreModule.forRoot(config, 'projector'), DatabaseModule.forRoot(config, 'projector')],
      controllers: [ProjectorCommands],
      providers: [
        { provide: PROJECTOR_CONFIG, useValue: config },
        { provide: LOGGER, useValue: logger },
        ProjectorService,
      ],
      exports: [ProjectorService],
    };
  }
}
